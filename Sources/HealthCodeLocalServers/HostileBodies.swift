/// Ingest bodies an attacker would send, each under the gateway's 4 MiB body limit, by what they attack:
/// what the gateway's tests and `healthcode bench hostile` send. `status` is the answer the gateway owes.
public struct HostileBody: Sendable {
    /// What it attacks, for reports.
    public var kind: String
    public var body: String
    /// The HTTP status the gateway answers it with.
    public var status: Int

    /// The catalogue: one event whose `data` has 200,000 members, nesting a million levels deep, a 3 MB
    /// string, a number of a million digits, and a million tiny array elements, event lines and blank lines.
    public static let all: [HostileBody] = {
        let event =
            #"{"specversion":"1.0","id":"h1","source":"urn:hc:publisher:gd","type":"hc.test-result.v1","subject":"P1","time":"2020-04-03T08:00:00Z","data":"#
        let members = (0..<200_000).map { #""m\#($0)":0"# }.joined(separator: ",")
        return [
            HostileBody(kind: "200,000 members", body: event + "{" + members + "}}", status: 422),
            HostileBody(
                kind: "deep nesting",
                body: event + String(repeating: "[", count: 1_000_000) + "}",
                status: 422
            ),
            HostileBody(
                kind: "3 MB string",
                body: event + #"{"lab":""# + String(repeating: "x", count: 3_000_000) + #""}}"#,
                status: 422
            ),
            HostileBody(
                kind: "a million digits",
                body: event + #"{"lab":"# + String(repeating: "7", count: 1_000_000) + "}}",
                status: 422
            ),
            HostileBody(
                kind: "a million elements",
                body: "[" + Array(repeating: "0", count: 1_000_000).joined(separator: ",") + "]",
                status: 413
            ),
            HostileBody(kind: "a million lines", body: String(repeating: "{}\n", count: 1_000_000), status: 413),
            HostileBody(kind: "a million blank lines", body: String(repeating: " \n", count: 1_900_000), status: 400),
        ]
    }()
}
