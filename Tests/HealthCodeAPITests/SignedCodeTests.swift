import Crypto
import Foundation
import HealthCodeCore
import HealthCodeTestSupport
import JWTKit
import Testing

@testable import HealthCodeAPI

/// Signs any payload with a region's real key (for tokens with absurd claims that only a forged or
/// faulty issuer would make): the compact JWS of `payload` under `key` named `kid`.
func resign(_ payload: [UInt8], key: P256.Signing.PrivateKey, kid: String) throws -> String {
    let header = Array(#"{"alg":"ES256","kid":"\#(kid)","typ":"JWT"}"#.utf8)
    let input = base64URL(header) + "." + base64URL(payload)
    let signature = try key.signature(for: Array(input.utf8)).rawRepresentation
    return input + "." + base64URL(Array(signature))
}

func base64URL(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

/// The payload of a compact JWS, decoded (no verification).
func payload(of token: String) -> [String: Any]? {
    let part = String(token.split(separator: ".")[1])
    var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    return Data(base64Encoded: base64).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
}

extension Result where Failure == SignedCodeRejection {
    var failureCode: String? {
        if case .failure(let rejection) = self { rejection.code } else { nil }
    }
}

/// Signed codes across two issuers (mutual recognition, rotation, revocation), bound to their holder.
@Suite struct SignedCodeTests {
    /// Iterations small enough for tests; production defaults are checked in ``bindingDefaults()``.
    static let iterations = 1000
    static let limits = HolderBindingLimits(iterations: iterations, minimumIterations: iterations)

    @Test("a region accepts the codes of a region it trusts, not those of a revoked key or an untrusted issuer")
    func twoIssuers() async throws {
        let old = CodeSigningKey(kid: "gd-2020-01", key: ES256PrivateKey())
        let current = CodeSigningKey(kid: "gd-2020-02", key: ES256PrivateKey())
        let now = Instant.now()
        func issuer(_ id: String, _ keys: [CodeSigningKey]) async throws -> CodeIssuer {
            try await CodeIssuer(issuer: id, keys: keys, lifetime: .seconds(300), bindingIterations: Self.iterations)
        }
        // Guangdong before the rotation signs with its old key, after it with the current one.
        let before = try await issuer("urn:hc:issuer:gd", [old])
        let gd = try await issuer("urn:hc:issuer:gd", [old, current])
        let sh = try await issuer("urn:hc:issuer:sh", [CodeSigningKey(kid: "sh-1", key: ES256PrivateKey())])
        let oldCode = try await before.sign(
            holder: "440106199001011234",
            status: .green,
            issuedAt: now,
            validUntil: nil
        )
        let newCode = try await gd.sign(holder: "440106199001011234", status: .yellow, issuedAt: now, validUntil: nil)
        let shCode = try await sh.sign(holder: "310101198502024321", status: .red, issuedAt: now, validUntil: nil)

        // Shanghai trusts Guangdong's published keys, both while the old key is still published...
        let shanghai = try await SignedCodeVerifier(
            trusted: [sh.issuer: sh.jwks, gd.issuer: gd.jwks],
            limits: Self.limits
        )
        #expect(try (await shanghai.verify(oldCode.token, holder: "440106199001011234")).get().claims.status == "green")
        #expect(
            try (await shanghai.verify(newCode.token, holder: "440106199001011234")).get().claims.status == "yellow"
        )
        #expect(
            try (await shanghai.verify(shCode.token, holder: "310101198502024321")).get().claims.iss.value == sh.issuer
        )

        // ...and after Guangdong revoked the old key (no longer in its JWKS).
        let revoked = try CodeIssuer.jwks(of: [current])
        let afterRevocation = try await SignedCodeVerifier(trusted: [gd.issuer: revoked], limits: Self.limits)
        #expect(await afterRevocation.verify(oldCode.token).failureCode == "unknown-key")
        #expect(try (await afterRevocation.verify(newCode.token)).get().holderChecked == false)
        // A region that does not recognise Shanghai refuses its codes.
        #expect(await afterRevocation.verify(shCode.token).failureCode == "untrusted-issuer")

        // A tampered payload (status changed) fails the signature; an expired code is refused.
        var parts = newCode.token.split(separator: ".").map(String.init)
        var forged = try #require(payload(of: newCode.token))
        forged["status"] = "green"
        parts[1] = base64URL(Array(try JSONSerialization.data(withJSONObject: forged)))
        #expect(await shanghai.verify(parts.joined(separator: ".")).failureCode == "bad-signature")
        let stale = try await gd.sign(holder: "X", status: .green, issuedAt: now - .seconds(3600), validUntil: nil)
        #expect(await shanghai.verify(stale.token).failureCode == "expired")
        #expect(await shanghai.verify("not-a-token").failureCode == "malformed")

        // A code never outlives the status it states.
        let short = try await gd.sign(holder: "X", status: .red, issuedAt: now, validUntil: now + .seconds(60))
        #expect(short.expiresAt == now + .seconds(60))
    }

    @Test("the holder binding: the right holder passes in both regions, another person fails, spelling aside")
    func holderBinding() async throws {
        let gd = try await CodeIssuer(
            issuer: "urn:hc:issuer:gd",
            keys: [CodeSigningKey(kid: "gd-1", key: ES256PrivateKey())],
            lifetime: .seconds(300),
            bindingIterations: Self.iterations
        )
        let sh = try await CodeIssuer(
            issuer: "urn:hc:issuer:sh",
            keys: [CodeSigningKey(kid: "sh-1", key: ES256PrivateKey())],
            lifetime: .seconds(300),
            bindingIterations: Self.iterations
        )
        let verifier = try await SignedCodeVerifier(
            trusted: [gd.issuer: gd.jwks, sh.issuer: sh.jwks],
            limits: Self.limits
        )
        for issuer in [gd, sh] {
            let code = try await issuer.sign(
                holder: "44010619900101123X",
                status: .green,
                issuedAt: .now(),
                validUntil: nil
            )
            let verified = try await verifier.verify(code.token, holder: "44010619900101123X").get()
            #expect(verified.holderChecked)
            // The same document written with spaces, hyphens or a lower-case check letter.
            #expect(try await verifier.verify(code.token, holder: "440106 19900101-123x").get().holderChecked)
            // The token on another person's phone: that person's document does not match.
            #expect(await verifier.verify(code.token, holder: "44010619900101124X").failureCode == "wrong-holder")
            #expect(await verifier.verify(code.token, holder: "").failureCode == "wrong-holder")
        }
        // A verifier that asks for more stretching than the token carries refuses it.
        let strict = try await SignedCodeVerifier(
            trusted: [gd.issuer: gd.jwks],
            limits: HolderBindingLimits(iterations: 5000, minimumIterations: 5000)
        )
        let code = try await gd.sign(holder: "A1", status: .green, issuedAt: .now(), validUntil: nil)
        #expect(await strict.verify(code.token, holder: "A1").failureCode == "weak-holder-binding")
        // The offline check used by `healthcode verify`: the JWKS given is the trust anchor.
        #expect(
            try await SignedCodeVerifier.verify(code.token, jwks: gd.jwks, holder: "A1", limits: Self.limits).get()
                .holderChecked
        )
        #expect(
            await SignedCodeVerifier.verify(code.token, jwks: gd.jwks, holder: "B2", limits: Self.limits).failureCode
                == "wrong-holder"
        )
    }

    @Test("a token reveals neither the identifier nor a pseudonym, and two tokens of one person share nothing")
    func unlinkable() async throws {
        let identifier = "440106199001011234"
        let pseudonymizer = try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey())
        let gd = try await CodeIssuer(
            issuer: "urn:hc:issuer:gd",
            keys: [CodeSigningKey(kid: "gd-1", key: ES256PrivateKey())],
            lifetime: .seconds(300),
            bindingIterations: Self.iterations
        )
        let now = Instant.now()
        // The second is made from the stretched key kept for the person's pseudonym.
        let pseudonym = pseudonymizer.pseudonym(of: identifier)
        let first = try await gd.sign(
            holder: identifier,
            holderKey: pseudonym,
            status: .green,
            issuedAt: now,
            validUntil: nil
        )
        let second = try await gd.sign(
            holder: identifier,
            holderKey: pseudonym,
            status: .green,
            issuedAt: now,
            validUntil: nil
        )
        let claims = [try #require(payload(of: first.token)), try #require(payload(of: second.token))]
        for (token, claim) in zip([first.token, second.token], claims) {
            #expect(Set(claim.keys) == ["iss", "status", "iat", "exp", "jti", "hb"], "no sub, nothing else")
            let text = String(decoding: try JSONSerialization.data(withJSONObject: claim), as: UTF8.self)
            #expect(!text.contains(identifier) && !token.contains(identifier))
            #expect(!text.contains(pseudonymizer.pseudonym(of: identifier)))
        }
        // Only what every green token of this issuer issued in the same second shares.
        let shared = claims[0].keys.filter { key in
            "\(claims[0][key] ?? "")" == "\(claims[1][key] ?? "")"
        }
        #expect(Set(shared) == ["iss", "status", "iat", "exp"])
        let bindings = claims.map { $0["hb"] as? [String: Any] ?? [:] }
        #expect(bindings[0]["s"] as? String != bindings[1]["s"] as? String, "salts differ")
        #expect(bindings[0]["h"] as? String != bindings[1]["h"] as? String, "commitments differ")
        #expect(bindings[0]["i"] as? Int == Self.iterations, "the iterations are recorded in the token")
        #expect(bindings[0]["d"] as? String == String(now.rfc3339Seconds.prefix(10)), "the day of the stretching")
        #expect(bindings[0]["d"] as? String == bindings[1]["d"] as? String, "the day is all two bindings share")
        let verifier = try await SignedCodeVerifier(trusted: [gd.issuer: gd.jwks], limits: Self.limits)
        for token in [first.token, second.token] {
            #expect(try await verifier.verify(token, holder: identifier).get().holderChecked)
        }
    }

    @Test("stretched holder keys are kept per key and day, the oldest made dropped first")
    func holderKeyCache() {
        let cache = HolderKeyCache(capacity: 2)
        cache.keep([1], for: "a", day: "2020-04-03")
        cache.keep([2], for: "b", day: "2020-04-03")
        #expect(cache.key(for: "a", day: "2020-04-03") == [1])
        #expect(cache.key(for: "a", day: "2020-04-04") == nil, "another day's key is made again")
        cache.keep([3], for: "c", day: "2020-04-03")
        #expect(cache.count == 2)
        #expect(cache.key(for: "a", day: "2020-04-03") == nil, "the oldest was dropped")
        #expect(cache.key(for: "b", day: "2020-04-03") == [2])
        #expect(cache.key(for: "c", day: "2020-04-03") == [3])
        cache.keep([4], for: "b", day: "2020-04-04")
        #expect(cache.key(for: "b", day: "2020-04-04") == [4], "a new day's key replaces the old in place")
        #expect(cache.count == 2)
        let none = HolderKeyCache(capacity: 0)
        none.keep([1], for: "a", day: "2020-04-03")
        #expect(none.count == 0)
    }

    @Test("absurd numbers in a correctly signed token are refused, never a trap")
    func absurdClaims() async throws {
        let key = P256.Signing.PrivateKey()
        let signing = CodeSigningKey(kid: "gd-1", key: try ES256PrivateKey(backing: key))
        let gd = try await CodeIssuer(
            issuer: "urn:hc:issuer:gd",
            keys: [signing],
            lifetime: .seconds(300),
            bindingIterations: Self.iterations
        )
        let verifier = try await SignedCodeVerifier(trusted: [gd.issuer: gd.jwks], limits: Self.limits)
        let good = try await gd.sign(holder: "A1", status: .green, issuedAt: .now(), validUntil: nil)
        let claims = try #require(payload(of: good.token))
        #expect(
            try
                (await verifier.verify(
                    try resign(Array(try JSONSerialization.data(withJSONObject: claims)), key: key, kid: "gd-1"),
                    holder: "A1"
                )).get().holderChecked
        )
        let cases: [(String, Any, String)] = [
            ("exp", 1e13, "malformed"), ("exp", -1e13, "malformed"), ("exp", 1e300, "malformed"),
            ("iat", -1e300, "malformed"), ("iat", 1e19, "malformed"), ("exp", 0, "expired"),
            ("exp", "soon", "malformed"), ("status", "purple", "malformed"),
            ("hb", ["s": "AAAA", "i": 1000, "h": "AAAA"], "malformed"),
            ("hb", ["s": (claims["hb"] as? [String: Any])?["s"] ?? "", "i": 1e12, "h": "x"], "malformed"),
            ("hb", ["s": (claims["hb"] as? [String: Any])?["s"] ?? "", "i": -5, "h": "x"], "malformed"),
        ]
        for (claim, value, expected) in cases {
            var changed = claims
            changed[claim] = value
            let token = try resign(Array(try JSONSerialization.data(withJSONObject: changed)), key: key, kid: "gd-1")
            #expect(await verifier.verify(token, holder: "A1").failureCode == expected, "\(claim) = \(value)")
        }
        // A binding with more iterations than this verifier computes is refused unread.
        if var binding = claims["hb"] as? [String: Any] {
            binding["i"] = Self.limits.maximumIterations + 1
            var changed = claims
            changed["hb"] = binding
            let token = try resign(Array(try JSONSerialization.data(withJSONObject: changed)), key: key, kid: "gd-1")
            #expect(await verifier.verify(token, holder: "A1").failureCode == "malformed")
        }
    }

    @Test("binding defaults: 100 000 iterations made, at least 50 000 accepted, at most 1 000 000 computed")
    func bindingDefaults() {
        let limits = HolderBindingLimits()
        #expect(limits.iterations == 100_000 && limits.minimumIterations == 50_000)
        #expect(limits.maximumIterations == 1_000_000)
        let configuration = QueryAPIConfiguration()
        #expect(configuration.holderBinding == limits)
        #expect(configuration.verificationRequiresHolder)
        #expect(configuration.unknownPeople == .refuse)
    }
}

/// Token verification over random and mutated tokens: every answer is a rejection or a valid code, and
/// nothing traps (a trap would end the test process).
@Suite struct TokenFuzzTests {
    @Test("random bytes, flipped bytes, swapped parts, truncations, over-long tokens and re-signed huge claims")
    func fuzz() async throws {
        var random = SplitMix64(seed: 2020)
        let key = P256.Signing.PrivateKey()
        let gd = try await CodeIssuer(
            issuer: "urn:hc:issuer:gd",
            keys: [CodeSigningKey(kid: "gd-1", key: try ES256PrivateKey(backing: key))],
            lifetime: .seconds(300),
            bindingIterations: SignedCodeTests.iterations
        )
        let verifier = try await SignedCodeVerifier(trusted: [gd.issuer: gd.jwks], limits: SignedCodeTests.limits)
        let real = try await gd.sign(holder: "A1", status: .red, issuedAt: .now(), validUntil: nil).token
        let claims = try #require(payload(of: real))
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\":,")
        let numbers: [Any] = [
            1e13, -1e13, 1e308, -1e308, 9_223_372_036_854_775_807, -9_223_372_036_854_775_808, 0, -1, 0.5,
            18_446_744_073_709_551_615.0, 1e19, "NaN", "Infinity", [1], ["a": 1], NSNull(), true,
        ]
        var accepted = 0
        for round in 0..<3000 {
            var token: String
            switch round % 7 {
            case 0:  // random characters
                let length = Int(random.next() % 600)
                token = String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            case 1:  // a real token with bytes flipped
                var bytes = Array(real.utf8)
                for _ in 0...Int(random.next() % 4) {
                    let index = Int(random.next() % UInt64(bytes.count))
                    bytes[index] = UInt8(truncatingIfNeeded: random.next())
                }
                token = String(decoding: bytes, as: UTF8.self)
            case 2:  // parts swapped or repeated
                let parts = real.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                token = (0..<Int(1 + random.next() % 4)).map { _ in parts[Int(random.next() % 3)] }
                    .joined(separator: ".")
            case 3:  // truncated
                token = String(real.prefix(Int(random.next() % UInt64(real.count))))
            case 4:  // over-long
                token = real + String(repeating: "A", count: Int(random.next() % 20_000))
            default:  // a claim replaced by a hostile value, re-signed with the real key
                var changed = claims
                let names = ["exp", "iat", "status", "iss", "jti", "hb", "hb.i", "hb.s", "hb.h"]
                let name = names[Int(random.next() % UInt64(names.count))]
                let value = numbers[Int(random.next() % UInt64(numbers.count))]
                if name.hasPrefix("hb.") {
                    var binding = claims["hb"] as? [String: Any] ?? [:]
                    binding[String(name.dropFirst(3))] = value
                    changed["hb"] = binding
                } else {
                    changed[name] = value
                }
                token = try resign(
                    Array(try JSONSerialization.data(withJSONObject: changed, options: [.fragmentsAllowed])),
                    key: key,
                    kid: "gd-1"
                )
            }
            let holder = round % 2 == 0 ? "A1" : nil
            if case .success = await verifier.verify(token, holder: holder) { accepted += 1 }
        }
        // Only re-signed tokens that changed nothing that matters (e.g. jti) can pass.
        #expect(accepted < 3000 / 7 * 2)
        // The real token still verifies after all that.
        #expect(try await verifier.verify(real, holder: "A1").get().holderChecked)
    }
}
