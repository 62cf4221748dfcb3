-- A bootenv may allow "provision without rebooting": the agent loads the kernel and initrds the
-- bootenv serves with kexec instead of a firmware reboot (docs/agent.md "Rebooting").
ALTER TABLE bootenvs ADD COLUMN kexec boolean NOT NULL DEFAULT false;
UPDATE bootenvs SET kexec = true WHERE content_pack = 'builtin' AND name IN ('discovery', 'unknown');
