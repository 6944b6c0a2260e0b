import ArgumentParser
import Foundation
import HealthCodeAPI

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a signed code offline against an issuer's published keys, and that it is the holder's.",
        discussion: """
            Prints the verified claims (issuer, status, issuedAt, expiresAt, whether the holder was checked) and \
            exits 0, or the reason (malformed, unknown-key, bad-signature, expired, weak-holder-binding, \
            wrong-holder) and exits 1. The keys are the issuer's JWKS: its /.well-known/jwks.json https URL (plain \
            http only to this machine), or a saved copy for checkpoints without a network. --holder is the \
            identifier on the identity document of the person showing the code: without it a copied code passes.
            """
    )

    @Argument(help: "The signed code (compact JWS).") var token: String
    @Option(name: [.customLong("keys"), .customLong("jwks")], help: "The issuer's JWKS: an https URL or a file.")
    var keys: String
    @Option(help: "The identifier on the holder's identity document.") var holder: String?
    @Option(
        name: .customLong("minimum-holder-binding-iterations"),
        help: "Fewest holder-binding iterations accepted."
    )
    var minimumIterations: Int = HolderBindingLimits().minimumIterations

    func run() async throws {
        let jwks = try await JWKSLocation(keys).load()
        var limits = HolderBindingLimits()
        limits.minimumIterations = minimumIterations
        switch await SignedCodeVerifier.verify(token, jwks: jwks, holder: holder, limits: limits) {
        case .success(let verified):
            print(
                "valid: issuer \(verified.claims.iss.value), status \(verified.claims.status), "
                    + "issuedAt \(verified.issuedAt.rfc3339Seconds), expiresAt \(verified.expiresAt.rfc3339Seconds), "
                    + (verified.holderChecked ? "holder matches" : "holder NOT checked (no --holder)")
            )
        case .failure(let rejection):
            print("invalid: \(rejection.code)")
            throw ExitCode(1)
        }
    }
}
