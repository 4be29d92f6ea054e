package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/conveyor-run/conveyor"
)

// MaxBodyBytes is the largest request body accepted, but for batches.
const MaxBodyBytes = 1 << 20

// MaxBatchBodyBytes is the largest body of POST /batches: room for
// conveyor.MaxBatchSize items with small inputs.
const MaxBatchBodyBytes = 32 << 20

// decodeBody reads a JSON body into v: 415 unless it is application/json,
// 413 past MaxBodyBytes, 400 for malformed JSON, a value that is not an
// object, unknown fields or trailing data. An empty body (nothing but
// JSON whitespace) is allowed when allowEmpty, leaving v untouched.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	return decodeBodyUpTo(w, r, v, allowEmpty, MaxBodyBytes)
}

// decodeBodyUpTo is decodeBody with a limit of its own.
func decodeBodyUpTo(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool, limit int64) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return conveyor.Errorf(conveyor.ETOOLARGE, "request body is larger than %d bytes", limit)
		}
		return conveyor.Errorf(conveyor.EBADREQUEST, "read request body: %v", err)
	}
	// JSON's whitespace only: a body of, say, U+00A0 is not empty, and
	// cancelling on it would act on what the client did not send.
	trimmed := bytes.Trim(body, " \t\r\n")
	if len(trimmed) == 0 {
		if allowEmpty {
			return nil
		}
		return conveyor.Errorf(conveyor.EBADREQUEST, "request body is empty; send a JSON object")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return conveyor.Errorf(conveyor.EUNSUPPORTED, "Content-Type must be application/json")
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259); Go's decoder would quietly keep the
		// bad bytes, and a store could not.
		return conveyor.Errorf(conveyor.EBADREQUEST, "request body is not valid UTF-8")
	}
	if trimmed[0] != '{' {
		// Go would decode null into a struct as nothing at all.
		return conveyor.Errorf(conveyor.EBADREQUEST, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ce *conveyor.Error // a field's own check, such as a tag's
		if errors.As(err, &ce) {
			return ce
		}
		return conveyor.Errorf(conveyor.EBADREQUEST, "malformed JSON body: %v", err)
	}
	if dec.Decode(new(json.RawMessage)) != io.EOF {
		return conveyor.Errorf(conveyor.EBADREQUEST, "malformed JSON body: data after the JSON value")
	}
	return exactFieldNames(body, reflect.TypeOf(v))
}

// exactFieldNames refuses a JSON object whose field names match the
// fields of t only when case is ignored, as encoding/json matches them:
// {"Pipeline": …} would otherwise be read as {"pipeline": …}. It looks
// into nested objects and arrays of objects of struct fields, in one
// pass over data, which decoded into t already.
func exactFieldNames(data []byte, t reflect.Type) error {
	return checkFieldNames(json.NewDecoder(bytes.NewReader(data)), t)
}

// rawMessage is the type of values kept as they are, never looked into.
var rawMessage = reflect.TypeFor[json.RawMessage]()

// checkFieldNames reads the next value from dec, which decodes into t,
// checking the field names of the objects in it that decode into structs.
func checkFieldNames(dec *json.Decoder, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var open json.Delim
	switch {
	case t.Kind() == reflect.Struct:
		open = '{'
	case t.Kind() == reflect.Slice && t != rawMessage && t.Elem().Kind() != reflect.Uint8:
		open = '['
	default:
		return dec.Decode(new(json.RawMessage)) // skipped
	}
	tok, err := dec.Token()
	if err != nil || tok != open {
		return err // null, or nothing else: the decoding has taken it
	}
	for dec.More() {
		var elem reflect.Type
		if open == '{' {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := tok.(string)
			f, ok := fieldByJSONName(t, name)
			if !ok {
				return conveyor.Errorf(conveyor.EBADREQUEST, "malformed JSON body: unknown field %q (field names are case-sensitive)", name)
			}
			elem = f.Type
		} else {
			elem = t.Elem()
		}
		if err := checkFieldNames(dec, elem); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// fieldByJSONName is the field of struct t that encoding/json writes as
// name, exactly.
func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" {
			tag = f.Name
		}
		if tag == name && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
