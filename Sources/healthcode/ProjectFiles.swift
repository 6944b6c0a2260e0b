import Foundation

/// Finds files that ship with the repository (rule sets, migrations) without configuration.
enum ProjectFiles {
    /// The first existing `relativePath` (e.g. `projections/rules/reference-v1.json`) under the current
    /// directory or one of its parents, else under the executable's directory or one of its parents (a built
    /// binary lives in `.build/<config>/` inside the checkout). `nil` if none exists.
    static func locate(_ relativePath: String) -> URL? {
        let fileManager = FileManager.default
        var starts = [URL(fileURLWithPath: fileManager.currentDirectoryPath)]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            starts.append(executable.deletingLastPathComponent())
        }
        for start in starts {
            var components = start.standardizedFileURL.pathComponents
            while !components.isEmpty {
                let candidate = URL(fileURLWithPath: NSString.path(withComponents: components + [relativePath]))
                if fileManager.fileExists(atPath: candidate.path) { return candidate }
                components.removeLast()
            }
        }
        return nil
    }
}
