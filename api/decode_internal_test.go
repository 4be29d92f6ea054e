package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor"
)

func TestExactFieldNames(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type body struct {
		Items []inner           `json:"items"`
		One   *inner            `json:"one"`
		Raw   json.RawMessage   `json:"raw"`
		Tags  map[string]string `json:"tags"`
		N     int               `json:"n"`
	}
	for _, tc := range []struct {
		json, bad string // bad: the field refused, "" when none
	}{
		{`{"items":[{"name":"a"},{"name":"b"}],"one":{"name":"c"},"n":1}`, ""},
		{`{"items":null,"one":null,"raw":null,"tags":null}`, ""},
		{`{"raw":{"Name":[{"Items":1}]},"tags":{"Name":"x"}}`, ""}, // kept as they are
		{`{"Items":[]}`, "Items"},
		{`{"items":[{"name":"a"},{"NAME":"b"}]}`, "NAME"},
		{`{"one":{"Name":"c"}}`, "Name"},
		{`{"n":1,"raw":[1,{"a":2}],"ONE":{}}`, "ONE"},
	} {
		err := exactFieldNames([]byte(tc.json), reflect.TypeFor[*body]())
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", tc.json, err)
		case tc.bad != "" && (conveyor.ErrorCode(err) != conveyor.EBADREQUEST || !strings.Contains(err.Error(), `"`+tc.bad+`"`)):
			t.Errorf("%s: %v, want bad_request naming %q", tc.json, err, tc.bad)
		}
	}
}
