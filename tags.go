package conveyor

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Tags label an execution: "tenant": "acme", "kind": "resize". Lists
// filter by them (ListFilter.Tags). A nil Tags is none, and is {} in JSON.
type Tags map[string]string

// Tag limits.
const (
	MaxTags           = 16
	MaxTagKeyBytes    = 63
	MaxTagValueBytes  = 255
	tagKeyDescription = "1 to 63 characters of a-z, 0-9, '_', '.' and '-', starting with a letter or digit"
)

// MarshalJSON writes no tags as {}, so clients always find an object.
func (t Tags) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]string(t))
}

// UnmarshalJSON reads an object of strings; a value of another type,
// null included, is EINVALID naming its tag, like every other bad tag.
func (t *Tags) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*t = nil
		return nil
	}
	tags := make(Tags, len(raw))
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		// Through a pointer, so that null is told from a string: Go
		// would quietly read it as "".
		var v *string
		if err := json.Unmarshal(raw[k], &v); err != nil || v == nil {
			return Errorf(EINVALID, "tag %q: values are strings", k)
		}
		tags[k] = *v
	}
	*t = tags
	return nil
}

// Validate returns EINVALID naming the first bad tag, in key order: at
// most MaxTags, keys as ValidTagKey says, values of at most
// MaxTagValueBytes bytes of text every store keeps.
func (t Tags) Validate() error {
	if len(t) > MaxTags {
		return Errorf(EINVALID, "%d tags; at most %d are allowed", len(t), MaxTags)
	}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		if !ValidTagKey(k) {
			return Errorf(EINVALID, "tag %q: keys are %s", k, tagKeyDescription)
		}
		if v := t[k]; len(v) > MaxTagValueBytes || !StorableText(v) {
			return Errorf(EINVALID, "tag %q: values are at most %d bytes of UTF-8 text without NUL", k, MaxTagValueBytes)
		}
	}
	return nil
}

// ValidTagKey reports whether k is 1 to MaxTagKeyBytes characters of
// a-z, 0-9, '_', '.' and '-', starting with a letter or digit.
func ValidTagKey(k string) bool {
	if k == "" || len(k) > MaxTagKeyBytes {
		return false
	}
	for i, c := range []byte(k) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Tag is one key and value a list is filtered by.
type Tag struct {
	Key, Value string
}

// ParseTag reads a tag filter written "key:value" (the value may hold
// further colons). EINVALID when it is not one.
func ParseTag(s string) (Tag, error) {
	k, v, ok := strings.Cut(s, ":")
	if !ok || !ValidTagKey(k) || len(v) > MaxTagValueBytes || !StorableText(v) {
		return Tag{}, Errorf(EINVALID, "tag filter %q: want key:value, keys %s", s, tagKeyDescription)
	}
	return Tag{k, v}, nil
}

// String is the tag as ParseTag reads it.
func (t Tag) String() string { return fmt.Sprintf("%s:%s", t.Key, t.Value) }
