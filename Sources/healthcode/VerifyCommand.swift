import ArgumentParser
import Foundation
import HealthCodeAPI

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a signed code offline against an issuer's published keys.",
        discussion: """
            Prints the verified claims (issuer, pseudonym, status, issuedAt, expiresAt) and exits 0, or the \
            reason (malformed, unknown-key, bad-signature, expired) and exits 1. The keys are the issuer's \
            JWKS: its /.well-known/jwks.json URL, or a saved copy for checkpoints without a network.
            """
    )

    @Argument(help: "The signed code (compact JWS).") var token: String
    @Option(help: "The issuer's JWKS: an http(s) URL or a file.") var keys: String

    func run() async throws {
        let jwks = try await JWKSLocation.load(keys)
        switch await SignedCodeVerifier.verify(token, jwks: jwks) {
        case .success(let claims):
            let formatter = ISO8601DateFormatter()
            print(
                "valid: issuer \(claims.iss.value), pseudonym \(claims.sub.value), status \(claims.status), "
                    + "issuedAt \(formatter.string(from: claims.iat.value)), "
                    + "expiresAt \(formatter.string(from: claims.exp.value))"
            )
        case .failure(let rejection):
            print("invalid: \(rejection.code)")
            throw ExitCode(1)
        }
    }
}
