// Which screen is showing, kept in the URL hash so back/forward and reloads keep the place.

export type Screen = "agents" | "approvals" | "audit" | "connections" | "mcp" | "settings";
export type Route = { screen: Screen; agent: string | null };

export const SCREENS: { id: Screen; label: string; key: string; icon: string }[] = [
  { id: "agents", label: "Agents", key: "1", icon: "M12 3l7 3v5c0 4.5-3 8.3-7 10-4-1.7-7-5.5-7-10V6l7-3z" },
  { id: "audit", label: "Audit", key: "2", icon: "M4 6h16M4 12h16M4 18h10" },
  {
    id: "connections",
    label: "Connections",
    key: "3",
    icon: "M9 15l6-6M7.5 12.5l-2 2a3.5 3.5 0 005 5l2-2M16.5 11.5l2-2a3.5 3.5 0 00-5-5l-2 2",
  },
  { id: "mcp", label: "MCP servers", key: "4", icon: "M4 5h16v5H4zM4 14h16v5H4zM8 7.5h.01M8 16.5h.01" },
  { id: "settings", label: "Settings", key: "5", icon: "M4 7h10M18 7h2M4 17h4M12 17h8M16 5v4M10 15v4" },
  { id: "approvals", label: "Approvals", key: "6", icon: "M12 8v4l3 2M12 3a9 9 0 100 18 9 9 0 000-18z" },
];

/** "#agents/billing-report-agent" → { screen: "agents", agent: "billing-report-agent" }. */
export function parseRoute(hash: string): Route {
  const [head, ...rest] = hash.replace(/^#\/?/, "").split("/");
  const screen = SCREENS.find((s) => s.id === head)?.id ?? "agents";
  const agent = screen === "agents" && rest.length > 0 && rest[0] ? decodeURIComponent(rest[0]) : null;
  return { screen, agent };
}

export function routeHash(route: Route): string {
  return route.agent ? `#${route.screen}/${encodeURIComponent(route.agent)}` : `#${route.screen}`;
}

/** Arrow keys move through the sidebar, wrapping; Home/End jump to the ends. */
export function nextIndex(current: number, key: string, count: number): number | null {
  switch (key) {
    case "ArrowDown":
      return (current + 1) % count;
    case "ArrowUp":
      return (current - 1 + count) % count;
    case "Home":
      return 0;
    case "End":
      return count - 1;
    default:
      return null;
  }
}
