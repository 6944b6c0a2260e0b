import Foundation
import PackagePlugin

/// Builds the served OpenAPI document of a service from the one file that defines it,
/// `openapi/<name>.json` at the package root (`HealthCodeGateway` → `gateway.json`, `HealthCodeAPI` →
/// `api.json`): the generated `OpenAPIDocument.swift` holds it as a string, so the binary serves
/// exactly the file and needs nothing beside it at run time.
@main
struct EmbedOpenAPI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let name = target.name.replacingOccurrences(of: "HealthCode", with: "").lowercased()
        let input = context.package.directoryURL.appending(components: "openapi", "\(name).json")
        let output = context.pluginWorkDirectoryURL.appending(component: "OpenAPIDocument.swift")
        return [
            .buildCommand(
                displayName: "Embedding openapi/\(name).json",
                executable: try context.tool(named: "OpenAPIEmbedder").url,
                arguments: [input.path, output.path],
                inputFiles: [input],
                outputFiles: [output]
            )
        ]
    }
}
