import Foundation

/// The path of a file under Tests/Fixtures.
func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(name)").path
}

/// A recorded API response, unedited.
func recorded(_ name: String) -> String {
    try! String(contentsOfFile: fixture("recorded-api/\(name)"), encoding: .utf8)
}

/// A hand-written API response (Tests/Fixtures/hand-written: the recordings hold no Node).
func handWritten(_ name: String) -> String {
    try! String(contentsOfFile: fixture("hand-written/\(name)"), encoding: .utf8)
}

/// The lines of a hand-written watch stream.
func handWrittenLines(_ name: String) -> [String] {
    handWritten(name).split(separator: "\n").map(String.init)
}

/// The lines of a recorded watch stream.
func recordedLines(_ name: String) -> [String] {
    recorded(name).split(separator: "\n").map(String.init)
}

