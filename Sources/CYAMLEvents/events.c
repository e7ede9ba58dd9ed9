// YAML events from libyaml, as plain structs and one buffer of scalar values: the fast manifest decoder walks
// them without building a node tree, and no libyaml type reaches Swift.
#include "CYAMLEvents.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

// Yams' own libyaml header, by the name only Yams' copy has (CYaml.h includes its yaml.h): the structs this file
// reads are those of the copy it is linked with. The system's libyaml-dev has no CYaml.h, so a build that found
// the system header instead fails here rather than pairing one copy's header with the other's code.
#include <CYaml.h>

typedef struct growing {
    void *bytes;
    size_t length;
    size_t capacity;
} growing;

/// Makes room for `extra` more bytes; 0, or -ENOMEM.
static int reserve(growing *buffer, size_t extra) {
    if (buffer->length + extra <= buffer->capacity) return 0;
    size_t capacity = buffer->capacity ? buffer->capacity : 4096;
    while (capacity < buffer->length + extra) capacity *= 2;
    void *bytes = realloc(buffer->bytes, capacity);
    if (!bytes) return -ENOMEM;
    buffer->bytes = bytes;
    buffer->capacity = capacity;
    return 0;
}

static uint8_t style_of(yaml_scalar_style_t style) {
    switch (style) {
    case YAML_SINGLE_QUOTED_SCALAR_STYLE: return CYAML_SINGLE_QUOTED;
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return CYAML_DOUBLE_QUOTED;
    case YAML_LITERAL_SCALAR_STYLE: return CYAML_LITERAL;
    case YAML_FOLDED_SCALAR_STYLE: return CYAML_FOLDED;
    default: return CYAML_PLAIN;
    }
}

/// Appends one event (and a scalar's value); 0, or a negative errno.
static int append(const yaml_event_t *event, growing *events, growing *values) {
    cyaml_event record = {0};
    switch (event->type) {
    case YAML_DOCUMENT_START_EVENT: record.type = CYAML_DOCUMENT_START; break;
    case YAML_DOCUMENT_END_EVENT: record.type = CYAML_DOCUMENT_END; break;
    case YAML_MAPPING_START_EVENT:
        record.type = CYAML_MAPPING_START;
        if (event->data.mapping_start.anchor) record.flags |= CYAML_ANCHORED;
        if (event->data.mapping_start.tag) record.flags |= CYAML_TAGGED;
        break;
    case YAML_MAPPING_END_EVENT: record.type = CYAML_MAPPING_END; break;
    case YAML_SEQUENCE_START_EVENT:
        record.type = CYAML_SEQUENCE_START;
        if (event->data.sequence_start.anchor) record.flags |= CYAML_ANCHORED;
        if (event->data.sequence_start.tag) record.flags |= CYAML_TAGGED;
        break;
    case YAML_SEQUENCE_END_EVENT: record.type = CYAML_SEQUENCE_END; break;
    case YAML_ALIAS_EVENT: record.type = CYAML_ALIAS; break;
    case YAML_SCALAR_EVENT: {
        record.type = CYAML_SCALAR;
        record.style = style_of(event->data.scalar.style);
        if (event->data.scalar.anchor) record.flags |= CYAML_ANCHORED;
        // An implicit plain scalar's tag is resolved by its text; any tag written out is explicit.
        if (event->data.scalar.tag) record.flags |= CYAML_TAGGED;
        size_t length = event->data.scalar.length;
        if (values->length + length > UINT32_MAX) return -EFBIG;
        int result = reserve(values, length);
        if (result) return result;
        memcpy((uint8_t *)values->bytes + values->length, event->data.scalar.value, length);
        record.value_offset = (uint32_t)values->length;
        record.value_length = (uint32_t)length;
        values->length += length;
        break;
    }
    default: return 0;
    }
    int result = reserve(events, sizeof record);
    if (result) return result;
    memcpy((uint8_t *)events->bytes + events->length, &record, sizeof record);
    events->length += sizeof record;
    return 0;
}

int cyaml_parse(const char *text, size_t length, cyaml_events *out) {
    memset(out, 0, sizeof *out);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, length);
    growing events = {0}, values = {0};
    int result = 0;
    for (;;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            result = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        int done = event.type == YAML_STREAM_END_EVENT;
        result = append(&event, &events, &values);
        yaml_event_delete(&event);
        if (result || done) break;
    }
    yaml_parser_delete(&parser);
    if (result) {
        free(events.bytes);
        free(values.bytes);
        return result;
    }
    out->events = events.bytes;
    out->count = events.length / sizeof(cyaml_event);
    out->values = values.bytes;
    out->values_length = values.length;
    return 0;
}

void cyaml_events_free(cyaml_events *events) {
    free(events->events);
    free(events->values);
    memset(events, 0, sizeof *events);
}
