import ArgumentParser

struct PseudonymCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pseudonym",
        abstract: "Print the pseudonym of a raw person identifier with the configured key.",
        discussion: "The identifier is not logged or stored. Use the pseudonym with the query API."
    )

    @Argument(help: "The raw person identifier.")
    var identifier: String

    @OptionGroup var pseudonym: PseudonymOptions

    func run() throws {
        print(try pseudonym.pseudonymizer().pseudonym(of: identifier))
    }
}
