import { describe, expect, it } from "vitest";
import { codeSpans, plainText } from "./prose";

describe("codeSpans", () => {
  it("turns backtick pairs into code spans and keeps the rest plain", () => {
    expect(codeSpans("run `mandate serve` or open the app")).toEqual([
      { code: false, text: "run " },
      { code: true, text: "mandate serve" },
      { code: false, text: " or open the app" },
    ]);
    expect(codeSpans("`a` and `b`")).toEqual([
      { code: true, text: "a" },
      { code: false, text: " and " },
      { code: true, text: "b" },
    ]);
  });

  it("keeps an unpaired backtick and text without any", () => {
    expect(codeSpans("it's `odd")).toEqual([{ code: false, text: "it's `odd" }]);
    expect(codeSpans("plain")).toEqual([{ code: false, text: "plain" }]);
    expect(codeSpans("")).toEqual([]);
    expect(codeSpans("a``b")).toEqual([{ code: false, text: "ab" }]);
  });

  it("reads without backticks", () => {
    expect(plainText("Start it with `mandate service install`.")).toBe(
      "Start it with mandate service install.",
    );
  });
});
