// swift-tools-version: 6.2
// Fuzz targets for IPVSProxy (libFuzzer). A package of its own so the main package stays free of
// sanitizer-only code; build and run it with `scripts/fuzz` (see Docs/fuzzing.md).
import PackageDescription

let package = Package(
    name: "IPVSProxyFuzz",
    dependencies: [
        .package(name: "IPVSProxy", path: "../..")
    ],
    targets: [
        // Manifest text (YAML or JSON) -> ManifestLoader.decode -> ManifestValidator.validate.
        .executableTarget(
            name: "FuzzManifest",
            dependencies: [.product(name: "KubernetesModel", package: "IPVSProxy")]
        ),
        // Raw netlink messages -> cnetlink_ipvs_parse_service / cnetlink_ipvs_parse_destination.
        .executableTarget(name: "FuzzNetlinkReply", dependencies: ["NetlinkFuzzSupport"]),
        // The same parsers, on messages built from a small program with every length filled in.
        .executableTarget(name: "FuzzNetlinkAttributes", dependencies: ["NetlinkFuzzSupport"]),
        // What both netlink targets check for a message.
        .target(
            name: "NetlinkFuzzSupport",
            dependencies: [.product(name: "CNetlink", package: "IPVSProxy")]
        ),
        // Text -> IPAddress(_:) and VirtualServerKey(_:), with round-trip and inet_pton cross-checks.
        .executableTarget(
            name: "FuzzAddress",
            dependencies: [.product(name: "IPVSModel", package: "IPVSProxy")]
        ),
    ]
)

// As in the main package: with IPVS_PROXY_WARNINGS_AS_ERRORS=1, as scripts/test builds, a warning is an error.
if Context.environment["IPVS_PROXY_WARNINGS_AS_ERRORS"] == "1" {
    for target in package.targets {
        target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
    }
}
