package conveyor

import (
	"bytes"
	"encoding/json"
)

// MaxDataBytes is the most an execution's data may take, as JSON: a
// merge that would make it larger is refused and the data stays as it
// was.
const MaxDataBytes = 64 << 10

// MergeData applies patch, a JSON object, to data (nil: none yet) as a
// JSON merge patch (RFC 7396): a key set to null is removed, an object
// merges into an object, anything else replaces. It returns the merged
// object, EINVALID when patch is not a JSON object or the result would be
// over MaxDataBytes. Invalid UTF-8 is replaced (CleanJSON) first.
func MergeData(data, patch json.RawMessage) (json.RawMessage, error) {
	var p map[string]any
	if err := decodeNumbers(CleanJSON(patch), &p); err != nil || p == nil {
		return nil, Errorf(EINVALID, "data must be a JSON object")
	}
	var d map[string]any
	if len(data) > 0 {
		if err := decodeNumbers(data, &d); err != nil {
			return nil, Errorf(EINVALID, "the stored data is not a JSON object: %v", err)
		}
	}
	merged, err := json.Marshal(mergePatch(d, p))
	if err != nil {
		return nil, Errorf(EINVALID, "data: %v", err)
	}
	if len(merged) > MaxDataBytes {
		return nil, Errorf(EINVALID, "data would be %d bytes of JSON; at most %d are kept", len(merged), MaxDataBytes)
	}
	return merged, nil
}

// mergePatch merges patch into target (which it may change) and returns
// the result.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = make(map[string]any, len(patch))
	}
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			sub, _ := target[k].(map[string]any)
			target[k] = mergePatch(sub, v)
		default:
			target[k] = v
		}
	}
	return target
}

// decodeNumbers decodes one JSON value, keeping numbers as written
// (json.Number): a merge must not turn 12345678901234567890 into 1.2e19.
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return Errorf(EINVALID, "data holds more than one JSON value")
	}
	return nil
}
