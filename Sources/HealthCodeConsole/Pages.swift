import HealthCodeAPI
import HealthCodeCore

/// The console's pages, rendered on the server as HTML with SVG charts.
enum Pages {
    /// A page: a skip link, the navigation (with who is signed in, for which purpose, and sign-out), the content.
    static func layout(title: String, session: ConsoleSession?, current: String?, _ content: HTML) -> HTML {
        var navigation: HTML = .empty
        if let session {
            let links: [(String, String, String)] = [
                ("dashboard", "/console/dashboard", "Dashboard"),
                ("people", "/console/people", "Person explanation"),
                ("proposals", "/console/proposals", "Proposals and approvals"),
            ]
            let items = links.map { key, href, label -> HTML in
                current == key
                    ? "<li><a href=\"\(href)\" aria-current=\"page\">\(label)</a></li>"
                    : "<li><a href=\"\(href)\">\(label)</a></li>"
            }
            navigation = """
                <nav aria-label="Console"><ul>\(items)</ul></nav>\
                <div class="who"><span>Signed in as <strong>\(session.analyst)</strong> for \
                <em>\(session.purpose)</em></span>\
                <form method="post" action="/console/sign-out"><input type="hidden" name="formToken" \
                value="\(session.formToken)"><button type="submit">Sign out</button></form></div>
                """
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">\
            <meta name="viewport" content="width=device-width, initial-scale=1">\
            <title>\(title) · HealthCode console</title>\
            <link rel="stylesheet" href="/console/assets/console.css">\
            <link rel="icon" href="/console/assets/icon.svg" type="image/svg+xml"></head>\
            <body><a class="skip" href="#main">Skip to content</a>\
            <header><p class="brand">HealthCode console</p>\(navigation)</header>\
            <main id="main" tabindex="-1"><h1>\(title)</h1>\(content)</main></body></html>
            """
    }

    static func problem(_ message: String) -> HTML {
        "<p class=\"problem\" role=\"alert\">\(message)</p>"
    }

    /// The sign-in form: an analyst key and the purpose of the reads to come.
    static func signIn(problem message: String?, next: String?) -> HTML {
        layout(
            title: "Sign in",
            session: nil,
            current: nil,
            """
            \(message.map(problem) ?? .empty)\
            <p>Every read of a person's data is recorded with your name and the purpose you declare here, as \
            through the query API.</p>\
            <form method="post" action="/console/sign-in" class="stack">\
            <input type="hidden" name="next" value="\(next ?? "")">\
            <label for="key">Analyst key</label>\
            <input id="key" name="key" type="password" autocomplete="off" required \
            aria-describedby="key-help" maxlength="200">\
            <p id="key-help" class="help">The hcak_… key from <code>healthcode analysts add</code>. It is not kept in \
            the browser: the session holds only a random token.</p>\
            <label for="purpose">Purpose of these reads</label>\
            <input id="purpose" name="purpose" type="text" required maxlength="200" \
            aria-describedby="purpose-help">\
            <p id="purpose-help" class="help">For example a case number: "complaint 2020-0415 about a red code".</p>\
            <button type="submit">Sign in</button></form>
            """
        )
    }

    /// The form that picks a person and the instants.
    static func personForm(subject: String, at: Instant?, knownAt: Instant?, ruleSet: String?) -> HTML {
        """
        <form method="get" action="/console/people" class="pickers">\
        <div><label for="subject">Pseudonym</label><input id="subject" name="subject" type="text" \
        value="\(subject)" required pattern="[0-9a-f]{32}" maxlength="32" size="34" \
        aria-describedby="subject-help"></div>\
        <div><label for="at">At (UTC)</label><input id="at" name="at" type="datetime-local" step="1" \
        value="\(at.map(Display.field) ?? "")"></div>\
        <div><label for="knownAt">Known at (UTC)</label><input id="knownAt" name="knownAt" \
        type="datetime-local" step="1" value="\(knownAt.map(Display.field) ?? "")"></div>\
        <div><label for="ruleSet">Rule set (optional)</label><input id="ruleSet" name="ruleSet" type="text" \
        maxlength="200" value="\(ruleSet ?? "")" placeholder="in force at known at" \
        aria-describedby="ruleset-help"></div>\
        <button type="submit">Explain</button>\
        <p id="subject-help" class="help">32 hexadecimal characters (<code>healthcode pseudonym</code> turns an \
        identifier into one). Leave "at" empty for now and "known at" empty for "as known at that instant". \
        A rule set is named by its hash or ID@VERSION (<code>healthcode rules list</code>).</p>\
        <p id="ruleset-help" class="help">Name another activated rule set to see how it would have judged.</p></form>
        """
    }

    /// A person's explanation: the code, the timeline chart, the firing rules and the events.
    static func person(
        _ explanation: PersonExplanation,
        band: [StatusSpan],
        window: (from: Instant, to: Instant),
        ruleSetName: String?,
        evidenceLink: String,
        earlierLink: String?,
        session: ConsoleSession
    ) -> HTML {
        let code = explanation.code
        let status = code.status
        let validUntil = code.validUntil.map(Display.instant) ?? "no end"
        let ruleRows = explanation.firingRules.map { rule -> HTML in
            let events = rule.events.map { "\($0.source) \($0.id)" }.joined(separator: ", ")
            return """
                <tr><th scope="row">\(rule.rule)</th><td>\(statusWord(rule.colour))</td>\
                <td>\(Display.instant(rule.since))\(rule.firesEarlier ? " or earlier" : "")</td>\
                <td>\(rule.until.map(Display.instant) ?? "no end")</td><td>\(events)</td></tr>
                """
        }
        let eventRows = explanation.timeline.reversed().map { event -> HTML in
            let state = event.retracted ? "retracted" : event.known ? "known" : "not yet known"
            let id: HTML = event.retracted ? "<del>\(event.id)</del>" : "\(event.id)"
            return """
                <tr class="\(event.retracted ? "retracted" : event.known ? "known" : "unknown")">\
                <td>\(Display.instant(event.time))</td><td>\(Display.instant(event.recordedTime))</td>\
                <td>\(Charts.shortType(event.type))</td><td>\(event.source)</td><td>\(id)</td><td>\(state)</td>\
                <td>\(event.firingRules.joined(separator: ", "))</td></tr>
                """
        }
        let identity = code.ruleSet
        return layout(
            title: "Person explanation",
            session: session,
            current: "people",
            """
            \(personForm(subject: explanation.subject, at: explanation.at, knownAt: explanation.knownAt, ruleSet: ruleSetName))\
            <section aria-labelledby="code-heading"><h2 id="code-heading">Code</h2>\
            <p class="code-line"><span class="status \(Charts.colourClass(status))">\(status.rawValue)</span> \
            at \(Display.instant(explanation.at)) as known at \(Display.instant(explanation.knownAt)), \
            valid until \(validUntil).</p>\
            <p>Judged by rule set <strong>\(identity.id)@\(identity.version)</strong> \
            (<code class="hash">\(identity.hash)</code>)\(ruleSetName == nil ? ", the one in force at known at" : ", named in the request").</p>\
            <p><a class="button" href="\(evidenceLink)" download>Download the evidence bundle</a> \
            <span class="help">(a file another region can verify: the events, the rule set and the code)</span></p>\
            </section>\
            <section aria-labelledby="timeline-heading"><h2 id="timeline-heading">Timeline</h2>\
            <p class="legend"><span class="key known">● known</span> <span class="key unknown">○ not yet known \
            at known at</span> <span class="key retracted">⊘ retracted</span> \
            <span class="key">bars: rules firing, band: status over time</span></p>\
            <div class="scroll">\(Charts.personTimeline(explanation, band: band, from: window.from, to: window.to))</div>\
            \(earlierLink.map { "<p><a href=\"\($0)\">Earlier events</a></p>" as HTML } ?? .empty)</section>\
            <section aria-labelledby="rules-heading"><h2 id="rules-heading">Rules firing</h2>\
            \(ruleRows.isEmpty ? "<p>No rule fires: the code is green.</p>" as HTML : """
            <div class="scroll"><table><caption>Rules firing at \(Display.instant(explanation.at))</caption>\
            <thead><tr><th scope="col">Rule</th><th scope="col">Colour</th><th scope="col">Since</th>\
            <th scope="col">Until</th><th scope="col">Events</th></tr></thead><tbody>\(ruleRows)</tbody></table></div>
            """)</section>\
            <section aria-labelledby="events-heading"><h2 id="events-heading">Events</h2>\
            <div class="scroll"><table><caption>Events, latest first</caption><thead><tr><th scope="col">Time</th>\
            <th scope="col">Recorded</th><th scope="col">Type</th><th scope="col">Publisher</th>\
            <th scope="col">Id</th><th scope="col">At known at</th><th scope="col">Supports</th></tr></thead>\
            <tbody>\(eventRows)</tbody></table></div></section>
            """
        )
    }

    /// A link to a person's explanation, showing the pseudonym's start.
    static func personLink(_ subject: String) -> HTML {
        "<a href=\"/console/people?subject=\(subject)\">\(String(subject.prefix(8)))…</a>"
    }

    /// A status as a word in its colour: the word always carries it.
    static func statusWord(_ status: CodeStatus) -> HTML {
        "<span class=\"status \(Charts.colourClass(status))\">\(status.rawValue)</span>"
    }

    /// The dashboard.
    static func dashboard(
        _ facts: DashboardFacts,
        proposals: [Proposal],
        configuration: ConsoleConfiguration,
        now: Instant,
        session: ConsoleSession
    ) -> HTML {
        let codes = facts.codesNow
        let areas = facts.codesByArea.sorted {
            if $0.red != $1.red { return $0.red > $1.red }
            if $0.total != $1.total { return $0.total > $1.total }
            return ($0.area?.value ?? 0) < ($1.area?.value ?? 0)
        }
        let earlier = facts.codesByAreaEarlier
        let areaRows = areas.prefix(50).map { row -> HTML in
            let then = earlier.map { sample in sample.areas.first { $0.area == row.area }?.red ?? 0 }
            return """
                <tr><th scope="row">\(row.area?.description ?? "unknown")</th><td>\(Display.count(row.green))</td>\
                <td>\(Display.count(row.yellow))</td><td>\(Display.count(row.red))</td>\
                <td>\(Display.count(row.total))</td>\
                \(then.map { "<td>\(Display.count($0)) (\(Display.change(row.red - $0)))</td>" as HTML } ?? .empty)</tr>
                """
        }
        let thenHeading: HTML =
            earlier.map {
                "<th scope=\"col\">red at \(Display.instant($0.at))</th>"
            } ?? .empty
        let stale = configuration.staleFeedAfter
        let feedRows = facts.feeds.sorted { $0.lastEventAt < $1.lastEventAt }.map { feed -> HTML in
            let isStale = now.microsecondsSinceEpoch - feed.lastEventAt.microsecondsSinceEpoch > stale.microseconds
            let lastHour = feed.minutes.filter {
                now.microsecondsSinceEpoch - $0.minute.microsecondsSinceEpoch < 3_600_000_000
            }.reduce(0) { $0 + $1.events }
            return """
                <tr class="\(isStale ? "stale" : "fresh")"><th scope="row">\(feed.publisher)</th>\
                <td>last event \(Display.age(of: feed.lastEventAt, now: now))<br>\
                <span class="help">\(Display.instant(feed.lastEventAt))</span></td>\
                <td><span class="badge \(isStale ? "badge-stale" : "badge-fresh")">\(isStale ? "stale" : "fresh")</span></td>\
                <td>\(Display.count(lastHour))</td><td>\(Charts.sparkline(feed, now: now))</td></tr>
                """
        }
        let silent = configuration.silentProjectorAfter
        let projectorRows = facts.projectors.map { report -> HTML in
            let isSilent = now.microsecondsSinceEpoch - report.reportedAt.microsecondsSinceEpoch > silent.microseconds
            let verdict = isSilent ? "silent" : report.healthy ? "healthy" : "needs attention"
            return """
                <tr class="\(isSilent || !report.healthy ? "stale" : "fresh")"><th scope="row">\(report.member)</th>\
                <td><span class="badge \(isSilent || !report.healthy ? "badge-stale" : "badge-fresh")">\(verdict)</span> \
                \(report.state)</td><td>\(Display.count(Int(report.lag)))</td>\
                <td>\(report.secondsSinceLastCommit.map { "\(HTML.number($0)) s ago" } ?? "none yet")</td>\
                <td>\(report.assignedPartitions)</td><td>\(Display.age(of: report.reportedAt, now: now))</td></tr>
                """
        }
        let letterRows = facts.deadLetters.latest.map { letter -> HTML in
            """
            <tr><td>\(letter.topic)</td><td>\(Int(letter.partition))</td><td>\(letter.offset)</td>\
            <td>\(letter.reason)</td><td>\(Display.instant(letter.parkedAt))</td></tr>
            """
        }
        let overrideRows = facts.heldOverrides.map { held -> HTML in
            """
            <tr><td>\(held.id)</td><td>\(held.office)</td><td>\(held.officer)</td>\
            <td>\(Display.instant(held.heldAt))</td></tr>
            """
        }
        let waiting = proposals.filter { $0.status == .held }
        let proposalRows = waiting.map { proposal -> HTML in
            """
            <tr><td><a href="/console/proposals/\(proposal.id)">#\(proposal.id) \(proposal.title)</a></td>\
            <td>\(Display.count(proposal.turningRed))</td><td>\(proposal.requestedBy)</td>\
            <td>\(Display.instant(proposal.requestedAt))</td></tr>
            """
        }
        let staleCount = facts.feeds.filter {
            now.microsecondsSinceEpoch - $0.lastEventAt.microsecondsSinceEpoch > stale.microseconds
        }.count
        return layout(
            title: "Dashboard",
            session: session,
            current: "dashboard",
            """
            <p class="help">As of \(Display.instant(now)). Reload the page for the latest figures.</p>\
            <section aria-labelledby="codes-heading"><h2 id="codes-heading">Codes by colour now</h2>\
            <dl class="figures" id="codes-now"><div><dt>green</dt><dd data-status="green">\(Display.count(codes.green))</dd></div>\
            <div><dt>yellow</dt><dd data-status="yellow">\(Display.count(codes.yellow))</dd></div>\
            <div><dt>red</dt><dd data-status="red">\(Display.count(codes.red))</dd></div>\
            <div><dt>all</dt><dd data-status="total">\(Display.count(codes.total))</dd></div></dl>\
            \(Charts.colourBars(codes, title: "Codes by colour now", id: "codes-bars"))</section>\
            <section aria-labelledby="history-heading"><h2 id="history-heading">Codes by colour over time</h2>\
            <div class="scroll">\(Charts.colourLines(facts.codesOverTime, title: "Codes by colour over the last hours", id: "codes-lines"))</div></section>\
            <section aria-labelledby="areas-heading"><h2 id="areas-heading">Codes by area</h2>\
            <div class="scroll"><table><caption>People by the district they were last known in, most red first \
            (at most 50 areas)</caption><thead><tr><th scope="col">Area</th><th scope="col">green</th>\
            <th scope="col">yellow</th><th scope="col">red</th><th scope="col">all</th>\(thenHeading)</tr></thead>\
            <tbody>\(areaRows)</tbody></table></div></section>\
            <section aria-labelledby="feeds-heading"><h2 id="feeds-heading">Publisher feeds</h2>\
            <p>\(staleCount == 0 ? "Every feed is fresh." : "\(staleCount) stale: no event for more than \(stale.components.seconds / 60) minutes.")</p>\
            <div class="scroll"><table id="feeds"><caption>Feeds, stalest first</caption><thead><tr>\
            <th scope="col">Publisher</th><th scope="col">Freshness</th><th scope="col">State</th>\
            <th scope="col">Events, last hour</th><th scope="col">Per minute</th></tr></thead>\
            <tbody>\(feedRows)</tbody></table></div></section>\
            <section aria-labelledby="projectors-heading"><h2 id="projectors-heading">Projectors</h2>\
            \(projectorRows.isEmpty ? "<p>No projector has reported.</p>" as HTML : """
            <div class="scroll"><table><caption>Projector health and lag</caption><thead><tr>\
            <th scope="col">Member</th><th scope="col">Health</th><th scope="col">Lag (messages)</th>\
            <th scope="col">Last commit</th><th scope="col">Partitions</th><th scope="col">Reported</th></tr></thead>\
            <tbody>\(projectorRows)</tbody></table></div>
            """)</section>\
            <section aria-labelledby="letters-heading"><h2 id="letters-heading">Dead letters</h2>\
            <p id="dead-letters">\(Display.count(facts.deadLetters.waiting)) waiting \
            (<code>healthcode dead-letters list</code> to inspect and replay).</p>\
            \(letterRows.isEmpty ? .empty : """
            <div class="scroll"><table><caption>Latest dead letters</caption><thead><tr><th scope="col">Topic</th>\
            <th scope="col">Partition</th><th scope="col">Offset</th><th scope="col">Reason</th>\
            <th scope="col">Parked</th></tr></thead><tbody>\(letterRows)</tbody></table></div>
            """)</section>\
            <section aria-labelledby="held-heading"><h2 id="held-heading">Held overrides and approvals</h2>\
            <p>\(Display.counted(facts.heldOverrides.count, "review override waits", "review overrides wait")) \
            for a second officer (<code>healthcode reviews approve</code>); \
            \(Display.counted(waiting.count, "change waits", "changes wait")) for approval.</p>\
            \(overrideRows.isEmpty ? .empty : """
            <div class="scroll"><table><caption>Held review overrides</caption><thead><tr><th scope="col">Id</th>\
            <th scope="col">Office</th><th scope="col">Officer</th><th scope="col">Held</th></tr></thead>\
            <tbody>\(overrideRows)</tbody></table></div>
            """)\
            \(proposalRows.isEmpty ? .empty : """
            <div class="scroll"><table><caption>Changes waiting for approval</caption><thead><tr>\
            <th scope="col">Change</th><th scope="col">Would turn red</th><th scope="col">Asked by</th>\
            <th scope="col">Asked</th></tr></thead><tbody>\(proposalRows)</tbody></table></div>
            """)</section>
            """
        )
    }

    /// Every held change, waiting ones first.
    static func proposals(_ proposals: [Proposal], session: ConsoleSession) -> HTML {
        let rows = proposals.map { proposal -> HTML in
            """
            <tr><td><a href="/console/proposals/\(proposal.id)">#\(proposal.id)</a></td><td>\(proposal.kind.rawValue)</td>\
            <td>\(proposal.title)</td><td>\(proposal.status.rawValue)</td>\
            <td>\(Display.count(proposal.turningRed))</td><td>\(proposal.requestedBy)</td>\
            <td>\(Display.instant(proposal.requestedAt))</td></tr>
            """
        }
        return layout(
            title: "Proposals and approvals",
            session: session,
            current: "proposals",
            """
            <p>Rule sets and designations that would turn more people red than the hold-over threshold wait here \
            for a second operator (<code>healthcode rules activate</code>, a designation published through the \
            gateway). Measure any other change with <code>healthcode impact</code>.</p>\
            \(rows.isEmpty ? "<p>No change has been held.</p>" as HTML : """
            <div class="scroll"><table><caption>Held changes</caption><thead><tr><th scope="col">Id</th>\
            <th scope="col">Kind</th><th scope="col">Change</th><th scope="col">Status</th>\
            <th scope="col">Would turn red</th><th scope="col">Asked by</th><th scope="col">Asked</th></tr></thead>\
            <tbody>\(rows)</tbody></table></div>
            """)
            """
        )
    }

    /// One held change: its impact by colour and by area, and approve/reject for who may.
    static func proposal(
        _ proposal: Proposal,
        notice: String?,
        problem message: String?,
        session: ConsoleSession
    )
        -> HTML
    {
        let impact = proposal.impact
        let byTransition = impact.byTransition.sorted { $0.key < $1.key }
        let transitionRows = byTransition.map { transition, count -> HTML in
            """
            <tr><td>\(statusWord(transition.from))</td><td>\(statusWord(transition.to))</td>\
            <td>\(Display.count(count))</td></tr>
            """
        }
        let unchangedRows = CodeStatus.allCases.map { status -> HTML in
            "<tr><td>\(statusWord(status))</td><td>\(Display.count(impact.unchanged[status, default: 0]))</td></tr>"
        }
        let lineRows = impact.lines.prefix(200).map { line -> HTML in
            """
            <tr><th scope="row">\(line.area?.description ?? "unknown")</th><td>\(statusWord(line.transition.from))</td>\
            <td>\(statusWord(line.transition.to))</td><td>\(Display.count(line.count))</td>\
            <td>\(line.samples.map(personLink).joined(", "))</td></tr>
            """
        }
        // Everyone's colour under the change: who keeps theirs, and who moves to another.
        var after = CodeCensus(area: nil)
        for (status, count) in impact.unchanged { after[status] += count }
        for (transition, count) in impact.byTransition { after[transition.to] += count }
        var decision: HTML = .empty
        if proposal.status == .held {
            if session.mayApprove {
                decision = """
                    <form method="post" action="/console/proposals/\(proposal.id)/decision" class="decision">\
                    <input type="hidden" name="formToken" value="\(session.formToken)">\
                    <p>Decide as <strong>\(session.analyst)</strong> (not the operator who asked for it).</p>\
                    <button type="submit" name="decision" value="approve">Approve</button> \
                    <button type="submit" name="decision" value="reject" class="secondary">Reject</button></form>
                    """
            } else {
                decision =
                    "<p>Your credential may not approve changes (<code>healthcode analysts add --may-approve</code>).</p>"
            }
        } else {
            decision = """
                <p>\(proposal.status.rawValue) by \(proposal.decidedBy ?? "?") at \
                \(proposal.decidedAt.map(Display.instant) ?? "?").</p>
                """
        }
        return layout(
            title: "Proposal #\(proposal.id)",
            session: session,
            current: "proposals",
            """
            \(notice.map { "<p class=\"notice\" role=\"status\">\($0)</p>" as HTML } ?? .empty)\
            \(message.map(problem) ?? .empty)\
            <dl class="facts"><div><dt>Change</dt><dd>\(proposal.kind.rawValue): \(proposal.title)</dd></div>\
            <div><dt>Takes effect</dt><dd>\(proposal.effectiveFrom.map(Display.instant) ?? "when published")</dd></div>\
            <div><dt>Would turn red</dt><dd>\(Display.count(proposal.turningRed)) (held over \
            \(Display.count(proposal.threshold)))</dd></div>\
            <div><dt>Asked by</dt><dd>\(proposal.requestedBy) at \(Display.instant(proposal.requestedAt))</dd></div>\
            <div><dt>Status</dt><dd>\(proposal.status.rawValue)</dd></div></dl>\
            <section aria-labelledby="decision-heading"><h2 id="decision-heading">Decision</h2>\(decision)</section>\
            <section aria-labelledby="colour-heading"><h2 id="colour-heading">Transitions by colour</h2>\
            <p>\(Display.count(impact.people)) people evaluated; \(Display.count(impact.changed)) would change colour.</p>\
            \(Charts.colourBars(after, title: "Codes by colour under the change", id: "after-bars"))\
            <div class="scroll"><table><caption>People changing colour</caption><thead><tr><th scope="col">From</th>\
            <th scope="col">To</th><th scope="col">People</th></tr></thead><tbody>\(transitionRows)</tbody></table>\
            <table><caption>People keeping their colour</caption><thead><tr><th scope="col">Colour</th>\
            <th scope="col">People</th></tr></thead><tbody>\(unchangedRows)</tbody></table></div></section>\
            <section aria-labelledby="area-heading"><h2 id="area-heading">Transitions by area</h2>\
            \(lineRows.isEmpty ? "<p>Nobody changes colour.</p>" as HTML : """
            <div class="scroll"><table><caption>By the district people were last known in (the first 200 lines)\
            </caption><thead><tr><th scope="col">Area</th><th scope="col">From</th><th scope="col">To</th>\
            <th scope="col">People</th><th scope="col">Examples</th></tr></thead><tbody>\(lineRows)</tbody></table></div>
            """)</section>
            """
        )
    }
}

extension Array where Element == HTML {
    func joined(_ separator: String) -> HTML { HTML(joining: self, separator: separator) }
}
