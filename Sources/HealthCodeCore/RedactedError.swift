/// An adapter's failure as a service sees it: only a description that is safe to log (an error code
/// and the server's message, never a query's values or a payload).
public struct RedactedError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
