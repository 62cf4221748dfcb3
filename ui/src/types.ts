// Shapes shared with the server. Request bodies come straight from the API's TypeBox schemas
// (src/api/schemas.ts, src/api/setup.ts) — the same ones that validate them on the server — so a
// change there breaks this build rather than the running UI. Rows are the API's list views.
import type { Static } from 'typebox';
import type * as S from '../../src/api/schemas.js';
import type { SetupBody as SetupSchema, SetupStatus } from '../../src/api/setup.js';
import type { STATES } from '../../src/model/lifecycle.js';

export type NodePatch = Static<typeof S.NodePatch>;
export type BindBody = Static<typeof S.Bind>;
export type DataPatch = Static<typeof S.DataPatch>;
export type LoginBody = Static<typeof S.Login>;
export type SetupBody = Static<typeof SetupSchema>;
export type { SetupStatus };
export type NodeRoleState = (typeof STATES)[number];

export interface NodeRow {
  id: number; uuid: string; name: string; description: string; alive: boolean; available: boolean; bootenv: string; provider: string;
  deployment: string; deployment_id: number; admin: boolean; service: boolean; state: NodeRoleState; inventory: Record<string, any>;
  hints: Record<string, unknown>; macs: string[]; profiles: string[]; version: number;
}
export interface NodeRoleRow {
  id: number; node: string; node_id: number; role: string; role_id: number; deployment: string; deployment_id: number; state: NodeRoleState;
  blocked_by: unknown; cohort: number; run_count: number; failures: number; retry_at: string | null; runlog?: string;
  parents?: Array<{ id: number; kind: 'hard' | 'soft' }>; children?: Array<{ id: number; kind: 'hard' | 'soft' }>;
}
export interface RoleRow { id: number; name: string; description: string; content_pack: string | null; jig: string; flags: string[]; requires: string[]; wants_attribs: string[] }
export interface DeploymentRow { id: number; name: string; description: string; parent: string | null; system: boolean; state: string; status: string }
export interface DeploymentRoleRow { id: number; deployment: string; role: string; role_id: number; proposed_data: Record<string, unknown>; committed_data: Record<string, unknown>; version: number }
export interface AttribRow { id: number; name: string; description: string; role: string | null; map: string; schema: Record<string, any>; secret: boolean }
export interface EventRow { id: number; type: string; object_kind: string; object_id: number | null; deployment_id: number | null; node_id: number | null; payload: Record<string, any>; at: string }
export interface AnnealSummary {
  finished: number; working: number; scheduled: number; failed: number; blocked: number; proposed: number; total: number;
  running: Array<{ id: number; noderole: number; node: string; role: string; started_at: string; async: boolean; log: string | null }>;
  errors: Array<{ id: number; node: string; role: string; deployment: string; state: string; failures: number; retry_at: string | null; runlog: string | null }>;
}
export interface GraphAnswer {
  noderoles: Array<{ id: number; node: string; node_id: number; role: string; state: NodeRoleState; blocked_by: unknown; cohort: number }>;
  external: Array<{ id: number; node: string; role: string; state: NodeRoleState; blocked_by: unknown; deployment: string }>;
  edges: Array<{ parent: number; child: number; kind: 'hard' | 'soft' }>;
  truncated: boolean;
}
