// libFuzzer target `manifest`: arbitrary bytes as a manifest file's text, through the code `ipvs-proxy`
// runs on every file it reads: ManifestLoader.decode (YAML via Yams/libyaml, or JSON via Foundation when
// the text starts with `{` or `[`), then ManifestValidator.validate, then every problem's message.
//
// Not exactly ManifestLoader.load: that refuses files with NUL bytes or invalid UTF-8 before decoding,
// while here invalid UTF-8 becomes U+FFFD and NUL bytes reach the decoder (decode is public API).
//
// FUZZ_MANIFEST_PRINT=1 prints what was decoded and every problem, for looking at one input:
//   FUZZ_MANIFEST_PRINT=1 .build-fuzz/debug/FuzzManifest some-file.yaml

import KubernetesModel

#if canImport(Glibc)
    import Glibc
#endif

private let printResults = getenv("FUZZ_MANIFEST_PRINT").map { String(cString: $0) == "1" } ?? false

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    var set = ManifestSet()
    var problems: [ManifestProblem] = []
    ManifestLoader.decode(text, file: "fuzz.yaml", into: &set, problems: &problems)
    let (invalid, warnings) = ManifestValidator.validate(set)
    var total = 0
    for problem in problems + invalid + warnings { total &+= problem.description.utf8.count }
    for service in set.services { total &+= service.location.description.utf8.count }
    if printResults {
        print(
            "decoded: \(set.services.count) Services, \(set.endpointSlices.count) EndpointSlices, "
                + "\(set.endpoints.count) Endpoints")
        for problem in problems { print("problem: \(problem)") }
        for problem in invalid { print("invalid: \(problem)") }
        for warning in warnings { print("warning: \(warning)") }
    }
    withExtendedLifetime(total) {}
    return 0
}
