// CYAMLEvents: a YAML stream as plain event records (libyaml's parser), for the fast manifest decoder, which walks
// them without building a node tree. No libyaml type reaches Swift.
//
// One libyaml in the binary: Yams (the full YAML decoder) compiles its own copy of libyaml into the binary (its
// `CYaml` target: a libyaml later than Debian's 0.2.5, with the same structs and symbols, and a nesting limit of
// about 1000 levels that 0.2.5 lacks). This target is compiled against that copy's header (`CYaml.h`, reached through
// the `Yams` product) and links no libyaml of its own, so its calls go to that copy. Linking the system's libyaml
// as well would put two libraries with the same symbols in one process, the dynamic linker choosing which one
// answers, and this file's structs could come from the other one's header. KubernetesModelTests' `OneLibYAMLTests`
// checks that no system libyaml is loaded and that the parser answering here is Yams' copy.
#ifndef CYAMLEVENTS_H
#define CYAMLEVENTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What a YAML event is. Only the events that shape a document are reported; stream events are not.
enum {
    CYAML_DOCUMENT_START = 1,
    CYAML_DOCUMENT_END = 2,
    CYAML_MAPPING_START = 3,
    CYAML_MAPPING_END = 4,
    CYAML_SEQUENCE_START = 5,
    CYAML_SEQUENCE_END = 6,
    CYAML_SCALAR = 7,
    CYAML_ALIAS = 8,
};

/// How a scalar was written.
enum {
    CYAML_PLAIN = 1,
    CYAML_SINGLE_QUOTED = 2,
    CYAML_DOUBLE_QUOTED = 3,
    CYAML_LITERAL = 4,
    CYAML_FOLDED = 5,
};

/// The event carries an anchor (`&a`) or an explicit tag (`!!str`, `!x`).
#define CYAML_ANCHORED 0x1
#define CYAML_TAGGED 0x2

/// One event of a YAML stream. A scalar's value (unescaped, UTF-8) is `value_length` bytes at `value_offset`
/// in the stream's values buffer.
typedef struct cyaml_event {
    uint8_t type;
    uint8_t style;
    uint8_t flags;
    uint32_t value_offset;
    uint32_t value_length;
} cyaml_event;

/// The events of a whole YAML stream and its scalars' values; free with `cyaml_events_free`.
typedef struct cyaml_events {
    cyaml_event *events;
    size_t count;
    uint8_t *values;
    size_t values_length;
} cyaml_events;

/// Parses `length` bytes of YAML into `out`. Returns 0, `-EINVAL` when the text is not YAML (libyaml's error:
/// the caller's full parser words it), `-EFBIG` beyond 4 GiB of values, or `-ENOMEM`. On failure `out` holds
/// nothing to free.
int cyaml_parse(const char *text, size_t length, cyaml_events *out);

/// Frees what `cyaml_parse` allocated.
void cyaml_events_free(cyaml_events *events);

#ifdef __cplusplus
}
#endif

#endif
