import HealthCodeAPI
import HealthCodeCore

/// Charts as SVG, drawn on the server: no script runs in the browser. Each chart has a title and a
/// description for screen readers, every colour comes with its word (or a pattern of its own), and the
/// figures are in a table beside it.
enum Charts {
    /// The CSS class of a status (fills and strokes in the stylesheet).
    static func colourClass(_ status: CodeStatus) -> String { "c-\(status.rawValue)" }

    /// A horizontal axis over `[from, to]` mapped onto `[left, right]`.
    struct TimeScale {
        let from: Int64
        let to: Int64
        let left: Double
        let right: Double

        init(from: Instant, to: Instant, left: Double, right: Double) {
            self.from = from.microsecondsSinceEpoch
            self.to = max(to.microsecondsSinceEpoch, from.microsecondsSinceEpoch + 1)
            self.left = left
            self.right = right
        }

        func x(_ instant: Instant) -> Double {
            let clamped = min(max(instant.microsecondsSinceEpoch, from), to)
            return left + Double(clamped - from) / Double(to - from) * (right - left)
        }

        /// About `count` evenly spaced ticks.
        func ticks(_ count: Int) -> [Instant] {
            (0...count).map { Instant(microsecondsSinceEpoch: from + (to - from) / Int64(count) * Int64($0)) }
        }
    }

    /// Ticks and their labels under a time axis at `y`.
    static func axis(_ scale: TimeScale, y: Double, ticks: Int = 4) -> HTML {
        var parts: [HTML] = [
            "<line class=\"axis\" x1=\"\(scale.left)\" y1=\"\(y)\" x2=\"\(scale.right)\" y2=\"\(y)\"/>"
        ]
        for (index, tick) in scale.ticks(ticks).enumerated() {
            let x = scale.x(tick)
            let anchor = index == 0 ? "start" : index == ticks ? "end" : "middle"
            let label = Display.instant(tick).replacingOccurrences(of: " UTC", with: "")
            parts.append(
                """
                <line class="tick" x1="\(x)" y1="\(y)" x2="\(x)" y2="\(y + 5)"/>\
                <text class="tick-label" x="\(x)" y="\(y + 18)" text-anchor="\(anchor)">\(label)</text>
                """
            )
        }
        return HTML(joining: parts)
    }

    /// The person's timeline: the status as a band over time, each firing rule as a bar over its interval,
    /// each event as a mark (filled when known at `knownAt`, hollow when not yet; crossed out when
    /// retracted), and where `at` and `knownAt` fall.
    static func personTimeline(
        _ explanation: PersonExplanation,
        band: [StatusSpan],
        from: Instant,
        to: Instant
    ) -> HTML {
        let width = 1000.0
        let left = 170.0
        let right = width - 20
        let scale = TimeScale(from: from, to: to, left: left, right: right)
        let rowHeight = 30.0
        var y = 34.0
        var parts: [HTML] = []
        // The status band.
        parts.append("<text class=\"row-label\" x=\"8\" y=\"\(y + 19)\">Status</text>")
        for span in band {
            let x0 = scale.x(span.from)
            let x1 = scale.x(span.until)
            let label = span.status.rawValue
            let title = "\(label) from \(Display.instant(span.from)) until \(Display.instant(span.until))"
            parts.append(
                """
                <g><title>\(title)</title><rect class="band \(colourClass(span.status))" x="\(x0)" y="\(y)" \
                width="\(max(1, x1 - x0))" height="26"/>\
                \(x1 - x0 > 44 ? "<text class=\"band-label\" x=\"\((x0 + x1) / 2)\" y=\"\(y + 18)\" text-anchor=\"middle\">\(label)</text>" as HTML : .empty)</g>
                """
            )
        }
        y += rowHeight + 10
        // One bar per firing rule.
        for rule in explanation.firingRules {
            let x0 = scale.x(rule.since)
            let x1 = rule.until.map(scale.x) ?? right
            let until = rule.until.map(Display.instant) ?? "no end"
            let title =
                "\(rule.rule) (\(rule.colour.rawValue)) fires from \(Display.instant(rule.since)) until \(until)"
            parts.append(
                """
                <g><title>\(title)</title><text class="row-label" x="8" y="\(y + 17)">\(truncated(rule.rule, 22))</text>\
                <rect class="rule \(colourClass(rule.colour))" x="\(x0)" y="\(y + 4)" width="\(max(2, x1 - x0))" \
                height="18"/><text class="bar-label" x="\(x0 + 4)" y="\(y + 17)">\(rule.colour.rawValue)\
                \(rule.until == nil ? " →" : "")</text></g>
                """
            )
            y += rowHeight
        }
        // Events, in lanes so that their labels do not overlap.
        parts.append("<text class=\"row-label\" x=\"8\" y=\"\(y + 20)\">Events</text>")
        var laneEnds: [Double] = []
        var marks: [HTML] = []
        for event in explanation.timeline where event.time >= from && event.time <= to {
            let x = scale.x(event.time)
            let label = shortType(event.type)
            let labelWidth = Double(label.count) * 6.5 + 14
            var lane = laneEnds.firstIndex { $0 < x - 4 } ?? laneEnds.count
            if lane >= 6 { lane = laneEnds.indices.min { laneEnds[$0] < laneEnds[$1] } ?? 0 }
            if lane == laneEnds.count { laneEnds.append(0) }
            laneEnds[lane] = x + labelWidth
            let markY = y + 14 + Double(lane) * 22
            let state = event.retracted ? "retracted" : event.known ? "known" : "unknown"
            let title =
                "\(label) at \(Display.instant(event.time)), recorded \(Display.instant(event.recordedTime)): "
                + (event.retracted ? "retracted" : event.known ? "known" : "not yet known")
            marks.append(
                """
                <g class="event \(state)"><title>\(title)</title><circle cx="\(x)" cy="\(markY)" r="5"/>\
                \(event.retracted ? "<line class=\"strike\" x1=\"\(x - 7)\" y1=\"\(markY + 7)\" x2=\"\(x + 7)\" y2=\"\(markY - 7)\"/>" as HTML : .empty)\
                <text class="event-label" x="\(x + 8)" y="\(markY + 4)">\(label)</text></g>
                """
            )
        }
        parts += marks
        y += 14 + Double(max(1, laneEnds.count)) * 22 + 4
        // Where `at` and `knownAt` fall.
        let top = 26.0
        for (instant, name, cls) in [(explanation.at, "at", "at"), (explanation.knownAt, "known at", "known-at")]
        where instant >= from && instant <= to {
            let x = scale.x(instant)
            parts.append(
                """
                <line class="marker \(cls)" x1="\(x)" y1="\(top)" x2="\(x)" y2="\(y)"/>\
                <text class="marker-label" x="\(x)" y="\(cls == "at" ? 14 : 24)" text-anchor="middle">\(name)</text>
                """
            )
        }
        parts.append(axis(scale, y: y + 4))
        let height = y + 30
        let description =
            "Status over time as known at \(Display.instant(explanation.knownAt)); \(explanation.firingRules.count) firing rules; \(explanation.timeline.count) events. The same facts are in the tables below."
        return """
            <svg class="chart timeline" viewBox="0 0 \(width) \(height)" role="img" \
            aria-labelledby="timeline-title timeline-desc" preserveAspectRatio="xMinYMin meet">\
            <title id="timeline-title">Timeline of the code at \(Display.instant(explanation.at))</title>\
            <desc id="timeline-desc">\(description)</desc>\(parts)</svg>
            """
    }

    /// Horizontal bars of the three colours, each labelled with its word, count and share.
    static func colourBars(_ counts: CodeCensus, title: String, id: String) -> HTML {
        let total = counts.total
        let width = 600.0
        let left = 80.0
        var parts: [HTML] = []
        for (index, status) in CodeStatus.allCases.reversed().enumerated() {
            let value = counts[status]
            let length = total > 0 ? Double(value) / Double(total) * (width - left - 170) : 0
            let y = 10.0 + Double(index) * 34
            parts.append(
                """
                <text class="row-label" x="8" y="\(y + 18)">\(status.rawValue)</text>\
                <rect class="bar \(colourClass(status))" x="\(left)" y="\(y)" width="\(max(length, 1))" height="24"/>\
                <text class="bar-value" x="\(left + max(length, 1) + 6)" y="\(y + 18)">\(Display.count(value)) \
                (\(Display.share(value, of: total)))</text>
                """
            )
        }
        return """
            <svg class="chart bars" viewBox="0 0 \(width) 116" role="img" aria-labelledby="\(id)-title">\
            <title id="\(id)-title">\(title)</title>\(parts)</svg>
            """
    }

    /// A line per colour over time (dashes differ as well as colours), with a legend in words.
    static func colourLines(_ history: [CodeCensusSample], title: String, id: String) -> HTML {
        let samples = history.map {
            (at: $0.at, counts: CodeCensus(area: nil, green: $0.green, yellow: $0.yellow, red: $0.red))
        }
        guard let first = samples.first, let last = samples.last, samples.count > 1 else {
            return "<p class=\"note\">No samples yet: the projector records the codes by colour once a minute.</p>"
        }
        let width = 1000.0
        let height = 260.0
        let left = 70.0
        let right = width - 110
        let top = 16.0
        let bottom = height - 40
        let scale = TimeScale(from: first.at, to: last.at, left: left, right: right)
        let maximum = max(1, samples.map { max($0.counts.green, $0.counts.yellow, $0.counts.red) }.max() ?? 1)
        func y(_ value: Int) -> Double { bottom - Double(value) / Double(maximum) * (bottom - top) }
        var parts: [HTML] = []
        for fraction in [0.0, 0.5, 1.0] {
            let value = Int(Double(maximum) * fraction)
            parts.append(
                """
                <line class="grid" x1="\(left)" y1="\(y(value))" x2="\(right)" y2="\(y(value))"/>\
                <text class="tick-label" x="\(left - 6)" y="\(y(value) + 4)" text-anchor="end">\(Display.count(value))</text>
                """
            )
        }
        for status in CodeStatus.allCases {
            let points = samples.map { "\(HTML.number(scale.x($0.at))),\(HTML.number(y($0.counts[status])))" }
                .joined(separator: " ")
            let end = last.counts[status]
            parts.append(
                """
                <polyline class="line \(colourClass(status))" points="\(points)"/>\
                <text class="line-label" x="\(right + 6)" y="\(y(end) + 4)">\(status.rawValue) \(Display.count(end))</text>
                """
            )
        }
        parts.append(axis(scale, y: bottom))
        return """
            <svg class="chart lines" viewBox="0 0 \(width) \(height)" role="img" aria-labelledby="\(id)-title">\
            <title id="\(id)-title">\(title)</title>\(parts)</svg>
            """
    }

    /// A small chart of events per minute over the last `minutes` minutes.
    static func sparkline(_ feed: PublisherFeed, now: Instant, minutes: Int = 60) -> HTML {
        let width = 180.0
        let height = 28.0
        let end = now.microsecondsSinceEpoch / 60_000_000
        var counts = [Int](repeating: 0, count: minutes)
        for minute in feed.minutes {
            let index = minutes - 1 - Int(end - minute.minute.microsecondsSinceEpoch / 60_000_000)
            if counts.indices.contains(index) { counts[index] += minute.events }
        }
        let maximum = max(1, counts.max() ?? 1)
        let step = width / Double(minutes)
        var bars: [HTML] = []
        for (index, count) in counts.enumerated() where count > 0 {
            let h = max(1, Double(count) / Double(maximum) * (height - 2))
            bars.append(
                "<rect class=\"spark\" x=\"\(Double(index) * step)\" y=\"\(height - h)\" width=\"\(max(1, step - 0.5))\" height=\"\(h)\"/>"
            )
        }
        let total = counts.reduce(0, +)
        return """
            <svg class="sparkline" viewBox="0 0 \(width) \(height)" role="img" \
            aria-label="\(Display.count(total)) events in the last \(minutes) minutes, at most \(Display.count(maximum)) a minute">\
            \(bars)</svg>
            """
    }

    /// `hc.test-result.v1` → `test-result`.
    static func shortType(_ type: String) -> String {
        var name = type.hasPrefix("hc.") ? String(type.dropFirst(3)) : type
        if let version = name.range(of: ".v", options: .backwards) { name = String(name[..<version.lowerBound]) }
        return name
    }

    static func truncated(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
