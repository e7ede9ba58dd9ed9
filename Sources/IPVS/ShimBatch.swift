import CNetlink

/// The failures a shim batch reported: each failed entry's index in the batch and its negative code.
typealias ShimFailures = [(index: Int, code: Int32)]

/// Runs one of the shim's batch commits and gathers the failures it reports.
/// - Returns: The commit's result code and the failures.
func collectingFailures(
    _ commit: (cnetlink_failure_visitor, UnsafeMutableRawPointer) -> Int32
) -> (result: Int32, failures: ShimFailures) {
    var failures: ShimFailures = []
    let result = withUnsafeMutablePointer(to: &failures) { pointer in
        commit(
            { index, error, context in
                context!.assumingMemoryBound(to: ShimFailures.self).pointee.append((Int(index), error))
            }, pointer)
    }
    return (result, failures)
}
