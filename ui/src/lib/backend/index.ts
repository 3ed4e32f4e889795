// The one place the UI talks to the backend. Everything goes through the generated,
// typed bindings; components import from here, never from @tauri-apps/api directly.
import { Channel } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { commands } from "./bindings";
import { inTeam, nextConnection, workspace, type TeamConnection, type TeamIdentity } from "../team/workspace.svelte";
import type {
  Actor,
  AgentDetail_Serialize,
  AgentEditInput_Deserialize,
  AgentKey_Serialize,
  AttestationView_Serialize,
  Agent_Serialize,
  AppInfo_Serialize,
  AuditCheck_Serialize,
  AuditPage_Serialize,
  AuditQuery_Deserialize,
  BrokerView_Serialize,
  BudgetState,
  CredentialPlacement,
  Connection_Serialize,
  ConnectionKind,
  Decision,
  Delegation_Serialize,
  EndpointStatus_Serialize,
  ErrorReport,
  FindingRef,
  Finding_Serialize,
  MovedCredential_Serialize,
  MoveChoices_Serialize,
  MovePlan_Serialize,
  OpenMove_Serialize,
  UndoneMove,
  PresetView,
  ScanReport_Serialize,
  TestToken_Serialize,
  WizardAgentInput_Deserialize,
  ExportDone,
  ExportFormat,
  ExportProgress,
  Member_Serialize,
  NewDelegationInput,
  NewAgentInput,
  NewConnectionInput_Deserialize,
  OutstandingToken_Serialize,
  OwnerPlan_Serialize,
  PersonStatus_Serialize,
  Settings_Serialize,
  StatusChange_Serialize,
  TimelineEvent_Serialize,
  TrustSignal,
  TrustState,
  UsageView_Serialize,
  McpServer_Serialize,
  NewMcpServerInput,
  ToolsUpdate,
  ConfigFile_Serialize,
  RewriteBackup_Serialize,
  Approval,
  ApprovalWindow,
  TrustSettings,
  WitnessStatus_Serialize,
} from "./bindings";

export type McpServer = McpServer_Serialize;
/** What this computer's last check of its team's audit log found. */
export type WitnessStatus = WitnessStatus_Serialize;
export type McpToolsUpdate = ToolsUpdate;
export type McpConfigFile = ConfigFile_Serialize;
export type McpImport = RewriteBackup_Serialize;

// What the backend sends (the `_Serialize` shapes: optional fields are explicit nulls).
export type Agent = Agent_Serialize;
export type AgentKey = AgentKey_Serialize;
export type AgentDetail = AgentDetail_Serialize;
export type Attestation = AttestationView_Serialize;
export type AppInfo = AppInfo_Serialize;
export type AuditCheck = AuditCheck_Serialize;
export type AuditPage = AuditPage_Serialize;
export type AuditQuery = AuditQuery_Deserialize;
export type AuditEvent = TimelineEvent_Serialize;
export type Delegation = Delegation_Serialize;
export type EndpointStatus = EndpointStatus_Serialize;
export type Member = Member_Serialize;
export type OutstandingToken = OutstandingToken_Serialize;
export type Settings = Settings_Serialize;
export type PersonStatus = PersonStatus_Serialize;
export type OwnerPlan = OwnerPlan_Serialize;
export type StatusChange = StatusChange_Serialize;
export type NewConnection = NewConnectionInput_Deserialize;
export type AgentEdit = AgentEditInput_Deserialize;
export type BrokerView = BrokerView_Serialize;
export type UsageView = UsageView_Serialize;
export type Finding = Finding_Serialize;
export type ScanReport = ScanReport_Serialize;
export type MovedCredential = MovedCredential_Serialize;
export type MoveChoices = MoveChoices_Serialize;
export type MovePlan = MovePlan_Serialize;
export type OpenMove = OpenMove_Serialize;
export type Connection = Connection_Serialize;
export type TestToken = Omit<TestToken_Serialize, "header" | "claims"> & {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
};
export type WizardAgentInput = WizardAgentInput_Deserialize;
export type {
  BudgetState,
  CredentialPlacement,
  FindingRef,
  PresetView,
  Actor,
  ConnectionKind,
  UndoneMove,
  Decision,
  ErrorReport,
  ExportDone,
  ExportFormat,
  ExportProgress,
  NewAgentInput,
  TrustSignal,
  TrustState,
  Approval,
  ApprovalWindow,
  TrustSettings,
};

/** A backend failure: a stable code to branch on and a sentence to show. */
export class BackendError extends Error {
  readonly code: string;
  constructor(report: ErrorReport) {
    super(report.message);
    this.code = report.code;
  }
}

type CommandResult<T> = { status: "ok"; data: T } | { status: "error"; error: ErrorReport };

export function unwrap<T>(result: CommandResult<T>): T {
  if (result.status === "ok") return result.data;
  throw new BackendError(result.error);
}

/** Turn anything thrown into a sentence for the user. */
export function messageOf(e: unknown): string {
  if (e instanceof BackendError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The last answer to each member API read, kept in memory only: while the team's stream is
 * down (the offline banner, which says since when, is up), a screen opened again shows what was
 * last read instead of an error. What is kept belongs to one server and one signed-in member
 * and role, and is forgotten when a team event says it may be out of date (see
 * [`forgetTeamReads`]). Changes are never kept or queued. */
const lastRead = new Map<string, { who: string; value: unknown }>();

/** Team events that change nothing a screen lists but the trail itself: sign-ins, streams
 * opened, cosignatures, exports and refusals. Any other action (and any unknown one) may change
 * agents, members, connections, MCP servers or approvals. */
const QUIET_ACTIONS = new Set([
  "member.token_issued",
  "member.token_denied",
  "member.watch_started",
  "member.invite_refused",
  "team.request_denied",
  "witness.cosigned",
  "witness.checkpoint_cosigned",
  "witness.cosignature_refused",
  "witness.checkpoint_refused",
  "audit.exported",
]);

/** Longest a read the server did not answer waits for the stream to report it offline. */
const OFFLINE_NOTICE_MS = 3000;

function isQuietAction(action: string | undefined): boolean {
  return action !== undefined && QUIET_ACTIONS.has(action);
}

/** Whether a team event reloads the screen showing: every event reloads the audit screen, and
 * one that changes only the trail (see [`QUIET_ACTIONS`]) reloads no other, which keeps its
 * place (a colleague signing in does not redraw the agent a person is reading). */
export function eventReloads(action: string | undefined, screen: string): boolean {
  return screen === "audit" || !isQuietAction(action);
}

/** Forget the kept reads a team event may have made out of date: the trail's pages at every
 * event, everything at an event that may change the registry (or with no action given). */
export function forgetTeamReads(action?: string) {
  if (isQuietAction(action)) {
    for (const path of lastRead.keys()) if (path.startsWith("/team/v1/audit")) lastRead.delete(path);
    return;
  }
  lastRead.clear();
}

/** One request to the team server's member API, as this installation's member. The server
 * answers with the same JSON the local commands return (the core's types, serialised the same
 * way), so its answers are typed as theirs. */
async function team<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T> {
  const id = workspace.identity;
  const who = id ? `${id.url}\n${id.member}\n${id.role}` : "";
  let r;
  try {
    r = unwrap(await commands.teamCall(method, path, body === undefined ? null : JSON.stringify(body)));
  } catch (e) {
    const kept = method === "GET" ? lastRead.get(path) : undefined;
    if (e instanceof BackendError && e.code === "unreachable" && kept && kept.who === who) {
      // The stream may not have noticed yet that the server went away: wait for it to say so
      // (it does within moments when the server is gone), so the banner is up whenever a
      // screen shows what was read before.
      if (workspace.connection?.online !== false) await nextConnection(OFFLINE_NOTICE_MS);
      if (workspace.connection?.online === false && lastRead.get(path) === kept) return kept.value as T;
    }
    throw e;
  }
  if (method === "GET") lastRead.set(path, { who, value: r.value });
  return r.value as T;
}

const seg = encodeURIComponent;

const calls = {
  appInfo: (): Promise<AppInfo> => commands.appInfo(),

  /** The team server this installation joined (null: none). */
  teamStatus: async (): Promise<TeamIdentity | null> => unwrap(await commands.teamStatus()),
  /** The certificate the server at `url` presents, before anything is trusted or sent. */
  teamPeek: async (url: string) => unwrap(await commands.teamPeek(url)),
  /** Join with the invite code, pinned to the fingerprint the person confirmed. */
  teamJoin: async (url: string, fingerprint: string, code: string) =>
    unwrap(await commands.teamJoin(url, fingerprint, code)),
  teamConnection: (): Promise<TeamConnection | null> => commands.teamConnection(),
  /** Each event of the team's trail (`team-event`); resolves to a function that stops listening. */
  onTeamEvent: async (onEvent: (e: { seq: number; action: string }) => void): Promise<() => void> =>
    listen<{ seq: number; action: string }>("team-event", (e) => {
      forgetTeamReads(e.payload.action);
      onEvent(e.payload);
    }),
  /** Whether the team server's stream is up (`team-connection`). */
  onTeamConnection: async (on: (c: TeamConnection) => void): Promise<() => void> =>
    listen<TeamConnection>("team-connection", (e) => on(e.payload)),
  /** The team's members (the server's list). */
  teamMembers: async (): Promise<{ name: string; role: string; email: string | null; removed_at: string | null }[]> =>
    team("GET", "/team/v1/members"),

  listAgents: async (): Promise<Agent[]> =>
    inTeam() ? team("GET", "/team/v1/agents") : unwrap(await commands.listAgents()),
  getAgent: async (name: string): Promise<AgentDetail> => {
    if (!inTeam()) return unwrap(await commands.getAgent(name));
    // The member API lists agents; their tokens, delegations and usage stay on the server.
    const agents: Agent[] = await team("GET", "/team/v1/agents");
    const agent = agents.find((a) => a.name === name);
    if (!agent) throw new BackendError({ code: "not_found", message: `There is no agent '${name}' on the team server.` });
    return { agent, tokens: [], delegations: [], usage: [], status_change: null };
  },
  outstandingTokens: async (agent: string | null = null): Promise<OutstandingToken[]> =>
    unwrap(await commands.outstandingTokens(agent)),
  listMembers: async (): Promise<Member[]> => unwrap(await commands.listMembers()),
  addMember: async (name: string): Promise<Member> => unwrap(await commands.addMember(name, null)),
  addAgent: async (input: NewAgentInput): Promise<Agent> => unwrap(await commands.addAgent(input)),
  editAgent: async (name: string, edit: AgentEdit): Promise<Agent> =>
    unwrap(await commands.editAgent(name, edit)),
  suspendAgent: async (name: string, reason: string | null): Promise<Agent> =>
    inTeam()
      ? team("POST", `/team/v1/agents/${seg(name)}/suspend`, { reason })
      : unwrap(await commands.suspendAgent(name, reason)),
  resumeAgent: async (name: string): Promise<Agent> =>
    inTeam() ? team("POST", `/team/v1/agents/${seg(name)}/resume`, {}) : unwrap(await commands.resumeAgent(name)),
  revokeAgent: async (name: string, reason: string): Promise<Agent> =>
    inTeam()
      ? team("POST", `/team/v1/agents/${seg(name)}/revoke`, { reason })
      : unwrap(await commands.revokeAgent(name, reason)),
  rotateAgentKey: async (name: string, overlapHours: number): Promise<Agent> =>
    unwrap(await commands.rotateAgentKey(name, overlapHours)),
  addDelegation: async (input: NewDelegationInput): Promise<Delegation> => unwrap(await commands.addDelegation(input)),
  revokeDelegation: async (id: string, reason: string): Promise<Delegation> =>
    unwrap(await commands.revokeDelegation(id, reason)),
  setTrustOverride: async (name: string, trust: TrustState | null, reason: string): Promise<Agent> =>
    unwrap(await commands.setTrustOverride(name, trust, reason)),
  /** A member reviews an agent's changed configuration (drift no longer holds it at PENDING). */
  reviewAgent: async (name: string, note: string | null): Promise<Agent> =>
    unwrap(await commands.reviewAgent(name, note)),

  /** An agent's review attestations, newest first, each saying whether it counts now. */
  listAttestations: async (name: string): Promise<Attestation[]> => unwrap(await commands.listAttestations(name)),
  /** Requests waiting for a person; with `all`, every one of the last 7 days. */
  listApprovals: async (all: boolean): Promise<Approval[]> =>
    inTeam() ? team("GET", "/team/v1/approvals") : unwrap(await commands.listApprovals(all)),
  approveRequest: async (id: string, window: ApprovalWindow): Promise<Approval> =>
    inTeam()
      ? team("POST", `/team/v1/approvals/${seg(id)}/approve`, { window })
      : unwrap(await commands.approveRequest(id, window)),
  denyRequest: async (id: string, reason: string): Promise<Approval> =>
    inTeam()
      ? team("POST", `/team/v1/approvals/${seg(id)}/deny`, { reason })
      : unwrap(await commands.denyRequest(id, reason)),
  /** Call `onChange` whenever a request is asked for, decided or expires (the desktop's trail
   * watcher emits `approvals-changed`); resolves to a function that stops listening. */
  onApprovalsChanged: async (onChange: () => void): Promise<() => void> =>
    listen("approvals-changed", () => onChange()),
  /** The last check of the team's audit log by this computer (null until one ran, or when it
   * witnesses no team log). */
  witnessStatus: async (): Promise<WitnessStatus | null> => commands.witnessStatus(),
  /** Call `onStatus` after each check of the team's log (the desktop's witness emits
   * `team-witness`); resolves to a function that stops listening. */
  onWitnessStatus: async (onStatus: (s: WitnessStatus) => void): Promise<() => void> =>
    listen<WitnessStatus>("team-witness", (e) => onStatus(e.payload)),
  trustSettings: async (): Promise<TrustSettings> => unwrap(await commands.trustSettings()),
  setTrustSettings: async (trustedMin: number, pendingMin: number, organisationFloor: number): Promise<TrustSettings> =>
    unwrap(await commands.setTrustSettings(trustedMin, pendingMin, organisationFloor)),

  auditPage: async (query: AuditQuery, limit: number, beforeSeq: number | null): Promise<AuditPage> => {
    if (!inTeam()) return unwrap(await commands.auditPage(query, { limit, before_seq: beforeSeq }));
    // The events this member may read, newest first (the server applies the role's rule).
    const before = beforeSeq === null ? "" : `&before=${beforeSeq}`;
    const events: AuditEvent[] = await team("GET", `/team/v1/audit?limit=${limit}${before}`);
    return { events, head: events[0]?.seq ?? 0 };
  },
  verifyAudit: async (): Promise<AuditCheck> => unwrap(await commands.verifyAudit()),
  /** Export through a native save dialog; null when the person cancelled it. `onProgress` is
   * called only until the returned promise settles: a progress message can arrive after the
   * command's answer (they travel separately), and would otherwise show a finished export as
   * still running. */
  exportAudit: async (
    format: ExportFormat,
    agent: string | null,
    range: { since: string | null; until: string | null },
    onProgress: (p: ExportProgress) => void,
  ): Promise<ExportDone | null> => {
    let running = true;
    const channel = new Channel<ExportProgress>();
    channel.onmessage = (p) => {
      if (running) onProgress(p);
    };
    try {
      return unwrap(await commands.exportAudit(format, agent, range.since, range.until, channel));
    } finally {
      running = false;
    }
  },

  /** Open the file manager on a file this window exported. */
  showExportInFolder: async (path: string): Promise<void> => {
    unwrap(await commands.showExportInFolder(path));
  },

  listConnections: async (): Promise<Connection[]> =>
    inTeam() ? team("GET", "/team/v1/connections") : unwrap(await commands.listConnections()),
  addConnection: async (input: NewConnection): Promise<Connection> => {
    if (!inTeam()) return unwrap(await commands.addConnection(input));
    if (input.kind === "database") {
      throw new BackendError({
        code: "invalid_input",
        message: "A database connection is added on the team server's host (`mandate connection add NAME --kind database`).",
      });
    }
    return team("POST", "/team/v1/connections", {
      name: input.name,
      base_url: input.base_url,
      actions: input.actions,
      trust_floor: input.trust_floor ?? null,
      preset: input.preset ?? null,
    });
  },
  /** The secret goes straight to the keychain (the team server's, in the team workspace);
   * nothing returns it. */
  setConnectionSecret: async (name: string, secret: string): Promise<Connection> => {
    if (!inTeam()) return unwrap(await commands.setConnectionSecret(name, secret));
    await team("PUT", `/team/v1/connections/${seg(name)}/secret`, { secret });
    const all: Connection[] = await team("GET", "/team/v1/connections");
    const c = all.find((x) => x.name === name);
    if (!c) throw new BackendError({ code: "not_found", message: `There is no connection '${name}' on the team server.` });
    return c;
  },
  removeConnection: async (name: string): Promise<string[]> =>
    inTeam()
      ? (await team<{ scopes_removed_from: string[] }>("DELETE", `/team/v1/connections/${seg(name)}`)).scopes_removed_from
      : unwrap(await commands.removeConnection(name)),
  brokerSettings: async (): Promise<BrokerView[]> => unwrap(await commands.brokerSettings()),
  setTrustFloor: async (name: string, floor: TrustState): Promise<Connection> =>
    unwrap(await commands.setTrustFloor(name, floor)),
  /** null removes a limit. */
  setConnectionLimits: async (name: string, ratePerMinute: number | null, dailyBudget: number | null): Promise<void> => {
    unwrap(await commands.setConnectionLimits(name, ratePerMinute, dailyBudget));
  },

  /** Who the window's changes name (null member until the person says who they are). */
  currentPerson: async (): Promise<PersonStatus> => unwrap(await commands.currentPerson()),
  /** Say who is using Mandate: an existing member, or a new one (and the organisation name). */
  choosePerson: async (member: string, email: string | null, organisation: string | null): Promise<PersonStatus> =>
    unwrap(await commands.choosePerson(member, email, organisation)),

  settings: async (): Promise<Settings> => unwrap(await commands.settings()),
  setOrganisation: async (name: string): Promise<string | null> =>
    unwrap(await commands.setOrganisation(name)),
  endpointStatus: (): Promise<EndpointStatus> => commands.endpointStatus(),
  setEndpointRunning: async (running: boolean): Promise<EndpointStatus> =>
    unwrap(await commands.setEndpointRunning(running)),

  /** The native folder dialog; null when the person cancelled it. */
  pickFolder: (): Promise<string | null> => commands.pickFolder(),
  /** Masked findings only: no secret ever comes back. */
  scanFolder: async (path: string): Promise<ScanReport> => unwrap(await commands.scanFolder(path)),
  /** Per finding: the connections of its kind and the default choice (none for an unknown kind). */
  moveChoices: async (findings: Finding[]): Promise<MoveChoices[]> => unwrap(await commands.moveChoices(findings)),
  /** What a move would do: both credentials masked, who uses the connection. Changes nothing. */
  planMove: async (root: string, finding: FindingRef, connection: string): Promise<MovePlan> =>
    unwrap(await commands.planMove(root, finding, connection)),
  /** The backend re-reads the file; the secret goes straight to the keychain. `replace` is the
   * person's answer to the confirmation when the connection already holds a credential. */
  moveFinding: async (
    root: string,
    finding: FindingRef,
    connection: string,
    rewriteForAgent: string | null,
    replace: boolean,
  ): Promise<MovedCredential> => unwrap(await commands.moveFinding(root, finding, connection, rewriteForAgent, replace)),
  /** The line comes back into its file and the connection gets its previous credential back. */
  undoMove: async (moveId: string): Promise<UndoneMove> => unwrap(await commands.undoMove(moveId)),
  openMoves: async (): Promise<OpenMove[]> => unwrap(await commands.openMoves()),
  listPresets: (): Promise<PresetView[]> => commands.listPresets(),
  /** What the owner typed means: an existing member, or one to add (with its email). */
  checkOwner: async (owner: string): Promise<OwnerPlan> => unwrap(await commands.checkOwner(owner)),
  createWizardAgent: async (input: WizardAgentInput): Promise<Agent> =>
    unwrap(await commands.createWizardAgent(input)),
  wizardTestToken: async (agent: string): Promise<TestToken> =>
    unwrap(await commands.wizardTestToken(agent)) as TestToken,

  listMcpServers: async (): Promise<McpServer[]> =>
    inTeam() ? team("GET", "/team/v1/mcp-servers") : unwrap(await commands.listMcpServers()),
  /** The secret value goes straight to the keychain; nothing returns it. */
  addMcpServer: async (input: NewMcpServerInput): Promise<McpServer> => unwrap(await commands.addMcpServer(input)),
  /** Starts the server once with its secrets and reads its tools. */
  readMcpTools: async (name: string): Promise<McpToolsUpdate> => unwrap(await commands.readMcpTools(name)),
  removeMcpServer: async (name: string): Promise<string[]> =>
    inTeam()
      ? (await team<{ scopes_removed_from: string[] }>("DELETE", `/team/v1/mcp-servers/${seg(name)}`)).scopes_removed_from
      : unwrap(await commands.removeMcpServer(name)),
  /** Configs in `folder` (optional) and the home folder; secret values come back masked. */
  findMcpConfigs: async (folder: string | null): Promise<McpConfigFile[]> =>
    unwrap(await commands.findMcpConfigs(folder)),
  importMcpEntry: async (path: string, key: string, server: string, agent: string): Promise<McpImport> =>
    unwrap(await commands.importMcpEntry(path, key, server, agent)),
  listMcpImports: async (): Promise<McpImport[]> => unwrap(await commands.listMcpImports()),
  undoMcpImport: async (id: string): Promise<McpImport> => unwrap(await commands.undoMcpImport(id)),
};

/** This computer's own data, which the team workspace must not show as the team's: empty
 * there (the team server's member API has no such list). */
const LOCAL_READS = [
  "outstandingTokens",
  "listMembers",
  "listAttestations",
  "brokerSettings",
  "listMcpImports",
  "openMoves",
] as const;

/** Changes the member API does not offer: refused in the team workspace (the screens hide
 * them), so that nothing meant for the team lands in this computer's registry. */
const LOCAL_WRITES = [
  "addMember",
  "addAgent",
  "editAgent",
  "rotateAgentKey",
  "addDelegation",
  "revokeDelegation",
  "setTrustOverride",
  "reviewAgent",
  "verifyAudit",
  "exportAudit",
  "setTrustFloor",
  "setConnectionLimits",
  "addMcpServer",
  "readMcpTools",
  "importMcpEntry",
  "undoMcpImport",
  "undoMove",
] as const;

function guardTeam<T extends Record<string, unknown>>(b: T): T {
  const out: Record<string, unknown> = { ...b };
  for (const k of LOCAL_READS) {
    const f = b[k] as (...a: unknown[]) => Promise<unknown>;
    out[k] = (...a: unknown[]) => (inTeam() ? Promise.resolve([]) : f(...a));
  }
  for (const k of LOCAL_WRITES) {
    const f = b[k] as (...a: unknown[]) => Promise<unknown>;
    out[k] = (...a: unknown[]) =>
      inTeam()
        ? Promise.reject(
            new BackendError({
              code: "refused",
              message:
                "The team server does not offer this from the app yet: do it on the server host, or switch to " +
                "\"This computer\" for this computer's own agents.",
            }),
          )
        : f(...a);
  }
  return out as T;
}

export const backend = guardTeam(calls);

