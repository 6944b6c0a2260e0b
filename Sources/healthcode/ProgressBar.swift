import Foundation
import Synchronization

/// A progress bar on standard error for long operator commands: `[#####.....]  45%  450,000/1,000,000
/// people  210,000/s  ETA 3 s`, redrawn in place on a terminal at most every 200 ms, or a plain line every
/// 2 s when standard error is a file or pipe (a CI log). Safe to advance from many tasks at once.
final class ProgressBar: Sendable {
    private struct State {
        var done = 0
        var lastDrawn: ContinuousClock.Instant?
    }

    private let total: Int
    private let unit: String
    private let started = ContinuousClock.now
    private let terminal = isatty(STDERR_FILENO) == 1
    private let state = Mutex(State())

    init(total: Int, unit: String) {
        self.total = total
        self.unit = unit
    }

    /// Adds `count` done, redrawing when due.
    func advance(by count: Int) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            state.done += count
            let interval: Duration = terminal ? .milliseconds(200) : .seconds(2)
            if let last = state.lastDrawn, last.duration(to: now) < interval { return nil }
            state.lastDrawn = now
            return render(done: state.done, at: now)
        }
        if let line { write(line) }
    }

    /// Draws the final state and ends the line.
    func finish() {
        let line = state.withLock { render(done: $0.done, at: ContinuousClock.now) }
        write(line)
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func render(done: Int, at now: ContinuousClock.Instant) -> String {
        let elapsed = seconds(started.duration(to: now))
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * 30)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        var line =
            "[\(bar)] \(String(format: "%3d", Int(fraction * 100)))%  \(Self.grouped(done))/\(Self.grouped(total))"
        line += " \(unit)  \(Self.grouped(Int(rate)))/s"
        if rate > 0, done < total { line += "  ETA \(Int((Double(total - done) / rate).rounded(.up))) s" }
        return line
    }

    private func write(_ line: String) {
        FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `1234567` as `1,234,567`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }
}
