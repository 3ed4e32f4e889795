// The timeline's data: pages of events loaded on demand as rows scroll into view.
//
// Without a filter, sequence numbers run 1..head without gaps, so row i is event head - i and
// any row can be fetched directly (a block of rows = one `before_seq` page): the scrollbar
// spans the whole log and a jump to the middle loads only what is shown. With a filter the
// number of matches is unknown, so pages are appended as the list nears its end.
import type { AuditEvent, AuditPage, AuditQuery } from "../backend";

export type FetchPage = (query: AuditQuery, limit: number, beforeSeq: number | null) => Promise<AuditPage>;

export function isFiltered(q: AuditQuery): boolean {
  return Boolean(q.agent?.trim() || q.action?.trim() || q.decision || q.member?.trim() || q.since || q.until);
}

export class Timeline {
  readonly query: AuditQuery;
  readonly pageSize: number;
  head = 0;
  /** Rows known so far (filtered), or every row of the log (unfiltered). */
  total = 0;
  /** Filtered: whether older matches may remain. */
  more = false;
  loaded = false;
  error: string | null = null;
  private readonly fetch: FetchPage;
  private readonly onchange: () => void;
  private readonly blocks = new Map<number, AuditEvent[]>();
  private readonly pending = new Set<number>();
  private rows: AuditEvent[] = [];
  private appending = false;

  constructor(fetch: FetchPage, query: AuditQuery, onchange: () => void = () => {}, pageSize = 200) {
    this.fetch = fetch;
    this.query = query;
    this.onchange = onchange;
    this.pageSize = pageSize;
  }

  get filtered(): boolean {
    return isFiltered(this.query);
  }

  /** Load the newest page. */
  async start(): Promise<void> {
    const page = await this.fetch(this.query, this.pageSize, null);
    this.head = page.head;
    if (this.filtered) {
      this.rows = page.events;
      this.total = page.events.length;
      this.more = page.events.length === this.pageSize;
    } else {
      this.total = page.head;
      this.blocks.set(0, page.events);
    }
    this.loaded = true;
    this.onchange();
  }

  /** The event shown in row `i`, if loaded. */
  get(i: number): AuditEvent | undefined {
    if (this.filtered) return this.rows[i];
    const b = Math.floor(i / this.pageSize);
    return this.blocks.get(b)?.[i - b * this.pageSize];
  }

  /** Make sure rows [first, end) are (being) loaded. */
  async ensure(first: number, end: number): Promise<void> {
    if (!this.loaded) return;
    if (this.filtered) {
      if (this.more && !this.appending && end >= this.rows.length - this.pageSize / 4) {
        this.appending = true;
        try {
          const last = this.rows[this.rows.length - 1];
          const page = await this.fetch(this.query, this.pageSize, last ? last.seq : null);
          this.rows = this.rows.concat(page.events);
          this.total = this.rows.length;
          this.more = page.events.length === this.pageSize;
        } catch (e) {
          this.error = String(e);
        } finally {
          this.appending = false;
          this.onchange();
        }
      }
      return;
    }
    const wanted: number[] = [];
    for (let b = Math.floor(first / this.pageSize); b <= Math.floor(Math.max(first, end - 1) / this.pageSize); b++) {
      if (b * this.pageSize < this.total && !this.blocks.has(b) && !this.pending.has(b)) wanted.push(b);
    }
    await Promise.all(
      wanted.map(async (b) => {
        this.pending.add(b);
        try {
          const page = await this.fetch(this.query, this.pageSize, this.head - b * this.pageSize + 1);
          this.blocks.set(b, page.events);
        } catch (e) {
          this.error = String(e);
        } finally {
          this.pending.delete(b);
        }
      }),
    );
    if (wanted.length > 0) this.onchange();
  }

  /** How many rows are in memory (for tests and the benchmark). */
  get cached(): number {
    if (this.filtered) return this.rows.length;
    let n = 0;
    for (const b of this.blocks.values()) n += b.length;
    return n;
  }
}
