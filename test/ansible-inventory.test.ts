// The Ansible dynamic-inventory shape (`--list`) built from inventory hosts: pure, no server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dynamicInventory, groupName, type InventoryHost } from '../src/annealer/ansible-jig.js';

test('group names: letters, digits and underscores only', () => {
  assert.equal(groupName('core-ssh-keys'), 'core_ssh_keys');
  assert.equal(groupName('deployment_etcd.prod'), 'deployment_etcd_prod');
});

test('dynamic inventory: every host under all, a group per role and deployment, hostvars under _meta', () => {
  const hosts: InventoryHost[] = [
    { name: 'a.example', vars: { ansible_host: '10.0.0.1', ansible_user: 'root' }, groups: ['deployment_prod', 'etcd', 'ready_state'] },
    { name: 'b.example', vars: { ansible_host: '10.0.0.2', ansible_user: 'admin' }, groups: ['deployment_prod', 'ready_state'] },
  ];
  const inv = dynamicInventory(hosts) as any;
  assert.deepEqual(inv.all, { hosts: ['a.example', 'b.example'], children: ['deployment_prod', 'etcd', 'ready_state'] });
  assert.deepEqual(inv.etcd, { hosts: ['a.example'] });
  assert.deepEqual(inv.ready_state, { hosts: ['a.example', 'b.example'] });
  assert.deepEqual(inv._meta.hostvars['b.example'], { ansible_host: '10.0.0.2', ansible_user: 'admin' });
  assert.deepEqual(dynamicInventory([]), { _meta: { hostvars: {} }, all: { hosts: [], children: [] } });
});
