// What the wizard's steps share: one object with reactive fields, so each step component reads
// and changes the same answers without a tangle of bindings.
import { backend, messageOf, type Agent, type Connection, type McpConfigFile, type Member, type MoveChoices, type MovedCredential, type OwnerPlan, type PresetView, type ScanReport, type TestToken } from "../backend";
import { nameProblem, scopeTargets, TTL_CHOICES } from "./logic";

export const STEPS = ["Inventory", "Issue", "Scope", "Rotate", "Proof"] as const;

export class WizardState {
  step = $state(0);

  // Loaded once.
  members: Member[] = $state([]);
  agents: Agent[] = $state([]);
  connections: Connection[] = $state([]);
  presets: PresetView[] = $state([]);

  // 1. Inventory
  surfaces: string[] = $state([]);
  folder = $state("");
  scan: ScanReport | null = $state(null);
  /** MCP client configs (the folder's and the user's) whose servers start with a key in plain
   * text: offered for import in step 4, once the agent exists. */
  mcp: McpConfigFile[] = $state([]);
  /** Per `path\0key`: what importing it did (a sentence), or why it failed. */
  mcpDone: Record<string, { ok: boolean; text: string }> = $state({});

  // 2. Issue
  purpose = $state("");
  name = $state("");
  /** The person typed a name: stop suggesting one. */
  nameEdited = $state(false);
  owner = $state("");
  /** What the core made of `owner` (checked as it is typed), or why it cannot be the owner. */
  ownerCheck: { for: string; plan: OwnerPlan | null; problem: string | null } | null = $state(null);
  parent = $state("");

  // 3. Scope
  chosen: string[] = $state([]);
  /** Scopes were filled from the read-only presets once; later visits keep the choice. */
  scopesSeeded = $state(false);
  wildcardConfirmed = $state(false);

  // 4. Rotate
  ttl = $state(TTL_CHOICES[1].secs);
  keyKind: "generate" | "public_key" = $state("generate");
  publicKey = $state("");
  agent: Agent | null = $state(null);
  /** Moved findings, by `file:line:column`. */
  moved: Record<string, MovedCredential> = $state({});
  /** Where each finding may go, by `file:line:column` (from the backend, after creation). */
  choices: Record<string, MoveChoices> = $state({});

  // 5. Proof
  token: TestToken | null = $state(null);

  findings = $derived(this.scan?.findings ?? []);

  targets = $derived(
    scopeTargets(
      this.surfaces,
      this.findings,
      this.connections.map((c) => ({ name: c.name, kind: c.kind, preset: c.preset, variable: c.variable, actions: c.actions })),
      this.presets,
    ),
  );

  nameError = $derived(nameProblem(this.name));

  /** Ask the core what the owner as typed means (unless already known), and keep the answer
   * while the field still says the same. */
  async checkOwner(): Promise<void> {
    const typed = this.owner.trim();
    if (typed === "" || this.ownerCheck?.for === typed) return;
    let check: { for: string; plan: OwnerPlan | null; problem: string | null };
    try {
      check = { for: typed, plan: await backend.checkOwner(typed), problem: null };
    } catch (e) {
      check = { for: typed, plan: null, problem: messageOf(e) };
    }
    if (this.owner.trim() === typed) this.ownerCheck = check;
  }

  /** The agent exists: the steps before Rotate are settled. */
  created = $derived(this.agent !== null);
}

export function findingKey(f: { file: string; line: number; column: number }): string {
  return `${f.file}:${f.line}:${f.column}`;
}
