/// Settings of the query API.
public struct QueryAPIConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to listen on. Default 8081.
    public var port: Int = 8081
    /// How long designations read from PostgreSQL are reused before re-reading. Default 1 s.
    public var designationRefreshInterval: Duration = .seconds(1)
    /// This region's issuer id in signed codes (`iss`). Default `urn:hc:issuer:local`.
    public var issuer: String = "urn:hc:issuer:local"
    /// Directory of the issuer's ES256 private keys, one `<kid>.pem` each; the last by name signs,
    /// all are published. Default `.local/code-signing-keys`.
    public var signingKeysDirectory: String = ".local/code-signing-keys"
    /// Longest validity of a signed code (shorter if the code itself ends sooner). Default 5 minutes.
    public var signedCodeLifetime: Duration = .seconds(300)
    /// A JSON file `{"<issuer>": "<JWKS URL or file>"}` of other regions whose signed codes this
    /// instance accepts (mutual recognition); `nil`: only its own. Default `nil`.
    public var trustedIssuersFile: String?

    /// Reads of materialised codes that each event loop runs at once before its further lookups queue
    /// and share one read (``EventLoopCodeReads``, ``CodeReadBatches``); each loop's pool has as many
    /// connections. Default 1: with one read per loop in flight PostgreSQL stays busy, and under load
    /// each read serves several lookups (`bench lookup` measured 2 per loop slower).
    public var codeReadsInFlight: Int = 1
    /// Most lookups one read of materialised codes serves. Default 64.
    public var maximumCodeReadBatch: Int = 64
    /// Most materialised codes kept in memory (``CodeCache``); 0 keeps none and every lookup reads
    /// PostgreSQL. Default 200 000 (roughly 0.5–1 kB each, by the number of reasons).
    public var codeCacheEntries: Int = 200_000
    /// Longest a kept code answers lookups before it is read again, whatever was announced: the bound
    /// on what an unannounced change (an UPDATE by hand) leaves behind. Default 30 s.
    public var codeCacheMaximumAge: Duration = .seconds(30)
    /// Wait before listening for code changes again after losing the connection; meanwhile lookups
    /// read PostgreSQL. Default 1 s.
    public var codeChangeRetryDelay: Duration = .seconds(1)

    /// The local defaults.
    public init() {}
}
