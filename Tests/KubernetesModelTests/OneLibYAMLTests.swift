import CYAMLEvents
import Foundation
import Testing

/// One libyaml in the process: CYAMLEvents, the fast YAML decoder's parser, is compiled against and linked to the
/// copy Yams vendors; no system libyaml comes along (see CYAMLEvents.h for why).
@Suite("One libyaml", .timeLimit(.minutes(2)))
struct OneLibYAMLTests {
    /// Linking the system's libyaml again (pkg-config's `yaml-0.1`, `-lyaml`) would map it into every process.
    @Test func noSystemLibYAMLIsLoaded() throws {
        // Read to the end: /proc files report a size of 0.
        let file = try #require(FileHandle(forReadingAtPath: "/proc/self/maps"))
        let maps = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
        #expect(maps.contains("libswiftCore"), "the maps were not read")
        let mapped = maps.split(separator: "\n").filter { $0.contains("libyaml") }
        #expect(mapped.isEmpty, "a system libyaml is mapped: \(mapped)")
    }

    /// Yams' copy refuses nesting a little past 1000 levels ("Maximum nesting level reached"); Debian's libyaml 0.2.5
    /// reads 2000 levels. The parser behind `cyaml_parse` is Yams' copy when it refuses them too.
    @Test func theParserIsYamsCopy() {
        func parse(depth: Int) -> Int32 {
            let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            var events = cyaml_events()
            let result = text.utf8CString.withUnsafeBufferPointer { cyaml_parse($0.baseAddress, depth * 2, &events) }
            cyaml_events_free(&events)
            return result
        }
        #expect(parse(depth: 500) == 0)
        #expect(parse(depth: 2000) != 0, "a libyaml without Yams' nesting limit answered")
    }
}
