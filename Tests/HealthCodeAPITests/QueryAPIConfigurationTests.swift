import HealthCodeAPI
import HealthCodeCore
import Testing

@Suite struct QueryAPIConfigurationTests {
    @Test func defaultsAreAccepted() throws {
        try QueryAPIConfiguration().validate()
    }

    @Test func zeroKeepsNoCodesAndIsAccepted() throws {
        var configuration = QueryAPIConfiguration()
        configuration.codeCacheEntries = 0
        try configuration.validate()
    }

    @Test("each setting out of bounds is refused by name", arguments: QueryAPIConfigurationError.Setting.allCases)
    func outOfBounds(setting: QueryAPIConfigurationError.Setting) {
        var configuration = QueryAPIConfiguration()
        switch setting {
        case .port: configuration.port = 70_000
        case .signedCodeLifetime: configuration.signedCodeLifetime = .zero
        case .codeReadsInFlight: configuration.codeReadsInFlight = 0
        case .maximumCodeReadBatch: configuration.maximumCodeReadBatch = 0
        case .codeCacheEntries: configuration.codeCacheEntries = -1
        case .codeCacheMaximumAge: configuration.codeCacheMaximumAge = .seconds(-1)
        case .readTimeout: configuration.readTimeout = .zero
        case .trustedKeysRefreshInterval: configuration.trustedKeysRefreshInterval = .milliseconds(10)
        case .trustedKeysRetryDelay: configuration.trustedKeysRetryDelay = .zero
        case .trustedKeysFetchTimeout: configuration.trustedKeysFetchTimeout = .zero
        case .holderBindingIterations: configuration.holderBindingIterations = 0
        case .minimumHolderBindingIterations:
            configuration.minimumHolderBindingIterations = configuration.holderBindingIterations + 1
        case .maximumHolderBindingIterations:
            configuration.maximumHolderBindingIterations = configuration.holderBindingIterations - 1
        case .maximumConcurrentHolderChecks: configuration.maximumConcurrentHolderChecks = 0
        case .platformRefreshInterval: configuration.platformRefreshInterval = .zero
        case .platformRateLimit: configuration.platformRateLimit = RequestRateLimit(requestsPerSecond: 0, burst: 1)
        case .personRateLimit: configuration.personRateLimit = RequestRateLimit(requestsPerSecond: 1, burst: 0)
        case .holderKeyCacheEntries: configuration.holderKeyCacheEntries = -1
        case .idleTimeout: configuration.timeouts.idleTimeout = .zero
        case .bodyReadTimeout: configuration.timeouts.bodyReadTimeout = .seconds(-1)
        }
        let error = #expect(throws: QueryAPIConfigurationError.self) { try configuration.validate() }
        #expect(error?.setting == setting)
        #expect(error?.description.contains(setting.rawValue) == true)
    }
}
