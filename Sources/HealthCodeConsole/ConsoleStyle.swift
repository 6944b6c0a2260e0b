/// The console's one stylesheet, served at `/console/assets/console.css`: readable from 390 px (a phone) to
/// wide screens, visible focus for keyboard users, and status colours that always come with a word or a
/// pattern. Contrast: text at least 4.5:1 on its background.
enum ConsoleStyle {
    static let stylesheet = """
        :root { --ink: #1b1f24; --muted: #4a5560; --line: #c9d1d9; --paper: #ffffff; --panel: #f4f6f8;
          --green: #1a7f37; --green-bg: #dafbe1; --yellow: #7d5a00; --yellow-bg: #fff3c4; --yellow-fill: #d4a72c;
          --red: #b3261e; --red-bg: #ffe1df; --focus: #0b5cd5; font-size: 16px; }
        * { box-sizing: border-box; }
        body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
          background: var(--paper); line-height: 1.45; }
        a { color: #0b4fb3; }
        a:focus, button:focus, input:focus, main:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
        .skip { position: absolute; left: -9999px; top: 0; background: var(--ink); color: #fff; padding: .5rem 1rem; }
        .skip:focus { left: .5rem; top: .5rem; z-index: 10; color: #fff; }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .6rem 1rem;
          background: #12263f; color: #fff; }
        header a { color: #fff; }
        .brand { font-weight: 700; margin: 0; }
        nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
        nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
        .who { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; margin-left: auto; font-size: .9rem; }
        .who form { margin: 0; }
        main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
        h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
        h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
        section { margin-bottom: 1rem; }
        form.stack { display: grid; gap: .4rem; max-width: 32rem; }
        form.pickers { display: flex; flex-wrap: wrap; gap: .75rem; align-items: flex-end; background: var(--panel);
          padding: .75rem; border-radius: 6px; }
        form.pickers div { display: grid; gap: .2rem; }
        label { font-weight: 600; }
        input { font: inherit; padding: .4rem .5rem; border: 1px solid #6e7781; border-radius: 4px; max-width: 100%; }
        button, .button { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid #0b4fb3;
          background: #0b4fb3; color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
        button.secondary { background: #fff; color: #8a1c14; border-color: #8a1c14; }
        header button { background: transparent; border-color: #fff; padding: .2rem .6rem; }
        .help { color: var(--muted); font-size: .9rem; margin: 0; }
        .problem { background: var(--red-bg); color: #6e1711; border-left: 4px solid var(--red); padding: .6rem .8rem; }
        .notice { background: var(--green-bg); color: #0f4d22; border-left: 4px solid var(--green); padding: .6rem .8rem; }
        .note { color: var(--muted); }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; margin: .5rem 0 1rem; min-width: 20rem; }
        caption { text-align: left; font-weight: 600; padding: .25rem 0; }
        th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { background: var(--panel); }
        tr.retracted td { color: var(--muted); }
        tr.unknown td { font-style: italic; }
        tr.stale { background: #fff4e5; }
        .status { font-weight: 700; padding: .05rem .5rem; border-radius: 3px; border: 1px solid currentColor; }
        .status.c-green { color: var(--green); background: var(--green-bg); }
        .status.c-yellow { color: var(--yellow); background: var(--yellow-bg); }
        .status.c-red { color: var(--red); background: var(--red-bg); }
        .badge { font-weight: 700; padding: .05rem .4rem; border-radius: 3px; }
        .badge-fresh { color: var(--green); background: var(--green-bg); }
        .badge-stale { color: #8a1c14; background: var(--red-bg); border: 1px dashed #8a1c14; }
        .code-line { font-size: 1.1rem; }
        code.hash { word-break: break-all; font-size: .85rem; }
        dl.figures { display: flex; flex-wrap: wrap; gap: 1rem; margin: 0 0 .5rem; }
        dl.figures div, dl.facts div { background: var(--panel); padding: .4rem .8rem; border-radius: 6px; }
        dl.figures dt { font-size: .9rem; color: var(--muted); }
        dl.figures dd { margin: 0; font-size: 1.4rem; font-weight: 700; }
        dl.facts { display: grid; gap: .4rem; }
        dl.facts dt { font-weight: 600; }
        dl.facts dd { margin: 0; }
        .legend .key { margin-right: 1rem; }
        svg.chart { width: 100%; height: auto; display: block; min-width: 640px; }
        svg.chart.bars { max-width: 640px; min-width: 0; }
        svg text { font-size: 12px; fill: var(--ink); }
        svg .row-label { font-weight: 600; }
        svg .tick-label { fill: var(--muted); font-size: 11px; }
        svg .axis, svg .tick { stroke: #6e7781; }
        svg .grid { stroke: var(--line); stroke-dasharray: 2 3; }
        svg .band.c-green, svg .rule.c-green, svg .bar.c-green { fill: #2da44e; }
        svg .band.c-yellow, svg .rule.c-yellow, svg .bar.c-yellow { fill: var(--yellow-fill); }
        svg .band.c-red, svg .rule.c-red, svg .bar.c-red { fill: #cf222e; }
        svg .rule { stroke: var(--ink); stroke-width: .5; }
        svg .band-label, svg .bar-label { fill: #fff; font-weight: 700; paint-order: stroke; stroke: rgba(0,0,0,.45);
          stroke-width: 2px; }
        svg .line { fill: none; stroke-width: 2.5; }
        svg .line.c-green { stroke: #2da44e; }
        svg .line.c-yellow { stroke: #9a6700; stroke-dasharray: 8 4; }
        svg .line.c-red { stroke: #cf222e; stroke-dasharray: 2 3; stroke-width: 3; }
        svg .event circle { stroke: var(--ink); stroke-width: 1.5; }
        svg .event.known circle { fill: var(--ink); }
        svg .event.unknown circle { fill: #fff; stroke-dasharray: 2 2; }
        svg .event.retracted circle { fill: #fff; }
        svg .event.retracted text { text-decoration: line-through; fill: var(--muted); }
        svg .strike { stroke: var(--red); stroke-width: 2; }
        svg .event-label { font-size: 11px; }
        svg .marker { stroke: var(--focus); stroke-width: 1.5; stroke-dasharray: 4 3; }
        svg .marker.known-at { stroke: #6639ba; }
        svg .marker-label { fill: var(--focus); font-weight: 700; font-size: 11px; }
        svg.sparkline { width: 180px; height: 28px; }
        svg .spark { fill: #0b4fb3; }
        @media (max-width: 600px) {
          main { padding: .6rem; }
          h1 { font-size: 1.3rem; }
          .who { margin-left: 0; }
          form.pickers { display: grid; }
          svg.chart { min-width: 560px; }
        }
        """

    /// The console's icon: three bands, green, yellow and red.
    static let icon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="6" fill="#2da44e"/>\
        <rect y="5" width="16" height="6" fill="#d4a72c"/><rect y="10" width="16" height="6" fill="#cf222e"/></svg>
        """
}
