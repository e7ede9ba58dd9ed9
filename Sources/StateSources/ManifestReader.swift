import Foundation
import KubernetesModel

/// How the folder source reads the file system: what files there are, whether one changed, and what it holds.
/// Tests give the source a reader that fails on cue.
package protocol ManifestReader: Sendable {
    /// The manifest files under `paths`, in ``ManifestLoader``'s order; a path that is missing or a folder that
    /// cannot be listed is a problem that ``ManifestProblem/isReadFailure``.
    func files(under paths: [String]) -> (files: [String], problems: [ManifestProblem])
    /// What tells a changed file.
    /// - Throws: A problem that ``ManifestProblem/isReadFailure`` when the file cannot be looked at.
    func fingerprint(of file: String) throws(ManifestProblem) -> FileFingerprint
    /// The file's objects, decoded and validated.
    /// - Throws: Every problem of the file; those of the file system are ``ManifestProblem/isReadFailure``.
    func load(_ file: String) throws(ManifestErrors) -> ManifestSet
}

/// The file system as it is.
package struct FileSystemManifestReader: ManifestReader {
    package init() {}

    package func files(under paths: [String]) -> (files: [String], problems: [ManifestProblem]) {
        var problems: [ManifestProblem] = []
        let files = ManifestLoader.manifestFiles(paths, problems: &problems)
        return (files, problems)
    }

    package func fingerprint(of file: String) throws(ManifestProblem) -> FileFingerprint {
        var info = stat()
        guard stat(file, &info) == 0 else { throw .readFailure(file, "cannot look at", errno: errno) }
        return FileFingerprint(
            size: Int64(info.st_size), modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9,
            inode: UInt64(info.st_ino))
    }

    package func load(_ file: String) throws(ManifestErrors) -> ManifestSet {
        try ManifestLoader.load(paths: [file])
    }
}

/// What tells a changed file: its size, modification time and inode (a file replaced by a rename, as editors and
/// ConfigMap volumes do, is a new inode even when size and time match).
package struct FileFingerprint: Hashable, Sendable {
    package var size: Int64
    package var modified: Double
    package var inode: UInt64

    package init(size: Int64, modified: Double, inode: UInt64 = 0) {
        self.size = size
        self.modified = modified
        self.inode = inode
    }
}
