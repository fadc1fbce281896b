/** A horizontal bar chart as a hand-written SVG string (no dependency), with an optional ceiling line. */

export interface Bar {
  readonly label: string
  readonly value: number
  /** Printed after the bar, e.g. "38.2 req/s (0.95×)". */
  readonly text: string
}

export interface Chart {
  readonly title: string
  readonly subtitle: string
  readonly bars: ReadonlyArray<Bar>
  readonly ceiling?: { readonly value: number; readonly label: string }
}

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

export const barChart = (chart: Chart): string => {
  const width = 860
  const labelWidth = 300
  const barArea = 380
  const rowHeight = 30
  const top = 64
  const height = top + chart.bars.length * rowHeight + 40
  const max = Math.max(...chart.bars.map((b) => b.value), chart.ceiling?.value ?? 0) * 1.05 || 1
  const x = (v: number) => labelWidth + (v / max) * barArea
  const rows = chart.bars.map((bar, i) => {
    const y = top + i * rowHeight
    return [
      `<text x="${labelWidth - 8}" y="${y + 19}" text-anchor="end">${escape(bar.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 5}" width="${Math.max(1, x(bar.value) - labelWidth).toFixed(1)}" height="20" fill="#3b7dd8"/>`,
      `<text x="${(x(bar.value) + 6).toFixed(1)}" y="${y + 19}">${escape(bar.text)}</text>`
    ].join("\n  ")
  })
  const ceiling =
    chart.ceiling === undefined
      ? ""
      : [
          `<line x1="${x(chart.ceiling.value).toFixed(1)}" y1="${top - 4}" x2="${x(chart.ceiling.value).toFixed(1)}" y2="${height - 30}" stroke="#d83b3b" stroke-dasharray="5,4"/>`,
          `<text x="${x(chart.ceiling.value).toFixed(1)}" y="${height - 14}" text-anchor="middle" fill="#d83b3b">${escape(chart.ceiling.label)}</text>`
        ].join("\n  ")
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">
  <rect width="100%" height="100%" fill="#ffffff"/>
  <text x="16" y="24" font-size="16" font-weight="bold">${escape(chart.title)}</text>
  <text x="16" y="44" fill="#555555">${escape(chart.subtitle)}</text>
  ${rows.join("\n  ")}
  ${ceiling}
</svg>
`
}
