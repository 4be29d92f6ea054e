package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/goccy/go-yaml"
)

// openAPIYAML is the contract of the API, OpenAPI 3.1, written by hand:
// one readable file that says what clients may rely on, in the words of
// the guide. The alternative, generating it from the handlers' Go types,
// would describe only what the types can say (not which statuses and
// error codes each endpoint answers, not which fields are null, not the
// stream endpoints), and it would agree with the code by construction,
// so nothing would check it. Instead the API tests check every response
// and stream message they get against it (openapi_test.go).
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openAPIYAML as JSON, converted once: the document is
// part of the binary, and the tests make sure it converts.
var openAPIJSON = mustYAMLToJSON(openAPIYAML)

func mustYAMLToJSON(y []byte) []byte {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		panic("api: openapi.yaml: " + err.Error())
	}
	var out bytes.Buffer
	if err := json.Compact(&out, j); err != nil {
		panic("api: openapi.yaml as JSON: " + err.Error())
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// getOpenAPI serves GET /openapi.json. It is public, like /healthz: it
// says nothing the repository does not, and client generators and API
// explorers fetch it without credentials.
func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	// A client that went away cannot be told.
	_, _ = w.Write(openAPIJSON)
}
