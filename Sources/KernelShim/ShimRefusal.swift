import CNetlink

/// An entry of a shim batch that the kernel refused: its index in the batch and what the shim said.
package struct ShimRefusal: Sendable, Hashable {
    package var index: Int
    package var error: ShimError

    package init(index: Int, error: ShimError) {
        self.index = index
        self.error = error
    }

    /// Runs one of the shim's batch commits with a visitor that gathers the refusals it reports.
    /// - Parameter commit: Calls the commit with the visitor and its context.
    /// - Returns: The commit's code (the number of refusals, or a negative code when the batch's outcome is
    ///   unknown) and the refusals, in the order the commit reported them.
    package static func collecting(
        _ commit: (cnetlink_failure_visitor, UnsafeMutableRawPointer) -> Int32
    ) -> (code: Int32, refusals: [ShimRefusal]) {
        var refusals: [ShimRefusal] = []
        let code = withUnsafeMutablePointer(to: &refusals) { pointer in
            commit(
                { index, error, context in
                    context!.assumingMemoryBound(to: [ShimRefusal].self).pointee.append(
                        ShimRefusal(index: Int(index), error: ShimError(rawValue: error)))
                }, pointer)
        }
        return (code, refusals)
    }
}
