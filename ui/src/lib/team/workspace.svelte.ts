// Which registry the window shows: this computer's, or the team server's this installation
// joined. The choice is remembered; a computer that joined a team opens in its workspace.
// `version` moves at a switch between workspaces, and the screens are keyed on it (drawn anew).
// `live` moves whenever what the team workspace shows must be read again (a team event, the
// server coming back): the screens read again in place ([`onLive`]), keeping their scroll, the
// element under the pointer and what the person typed; only the audit screen is drawn anew.
import { untrack } from "svelte";
import type { TeamConnection_Serialize, TeamIdentity_Serialize } from "../backend/bindings";

export type Mode = "local" | "team";
export type TeamIdentity = TeamIdentity_Serialize;
export type TeamConnection = TeamConnection_Serialize;

const KEY = "mandate.workspace";

export const workspace = $state({
  mode: "local" as Mode,
  identity: null as TeamIdentity | null,
  connection: null as TeamConnection | null,
  version: 0,
  live: 0,
});

/** Whether the screens read and change the team server's registry. */
export function inTeam(): boolean {
  return workspace.mode === "team" && workspace.identity !== null;
}

/** The workspace to open in: the remembered one, else the team's when joined. */
export function initialMode(identity: TeamIdentity | null, remembered: string | null): Mode {
  if (!identity) return "local";
  return remembered === "local" ? "local" : "team";
}

export function setIdentity(identity: TeamIdentity | null) {
  workspace.identity = identity;
  workspace.mode = initialMode(identity, localStorage.getItem(KEY));
}

export function switchTo(mode: Mode) {
  if (mode === "team" && !workspace.identity) return;
  workspace.mode = mode;
  localStorage.setItem(KEY, mode);
  workspace.version++;
}

/** Read again what the screens show. */
export function refresh() {
  workspace.live++;
}

/** Call `load` each time the team workspace must be read again (after the call, during a
 * component's set-up): the component reads again in place instead of being drawn anew. */
export function onLive(load: () => void) {
  let seen = untrack(() => workspace.live);
  $effect(() => {
    const live = workspace.live;
    if (live !== seen) {
      seen = live;
      untrack(load);
    }
  });
}

/** Reads waiting for the stream's next state (see [`nextConnection`]). */
const waiting = new Set<() => void>();

/** The stream's new state, from its `team-connection` event. Returns whether the server just
 * came back (it was offline before), when what the window shows must be read again. */
export function setConnection(c: TeamConnection): boolean {
  const back = c.online && workspace.connection !== null && !workspace.connection.online;
  workspace.connection = c;
  for (const wake of [...waiting]) wake();
  return back;
}

/** Resolves at the stream's next state, or after `ms`. A read the server did not answer may
 * come just before the stream notices the server went away; it waits for the stream to say so
 * before it decides between what was read before and an error. */
export function nextConnection(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      waiting.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    waiting.add(wake);
  });
}

/** The role's word for the badge ("admin", "member", "auditor"). */
export function roleLabel(role: string): string {
  return role === "admin" ? "Admin" : role === "auditor" ? "Auditor (read only)" : "Member";
}
