package api

import (
	"strings"
	"testing"
	"time"
)

func TestStreamTokens(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{APIKey: "k"}}
	now := time.Unix(1_000_000, 0)
	tok := s.streamToken("a", now.Add(time.Minute))
	cases := []struct {
		name, token, id string
		at              time.Time
		want            bool
	}{
		{"valid", tok, "a", now, true},
		{"other execution", tok, "b", now, false},
		{"expired", tok, "a", now.Add(2 * time.Minute), false},
		{"garbage", "not-a-token", "a", now, false},
		{"empty", "", "a", now, false},
		{"other key", (&Server{cfg: Config{APIKey: "x"}}).streamToken("a", now.Add(time.Minute)), "a", now, false},
		// The last base64url character carries spare bits; changing them
		// must not give another valid spelling of the same token.
		{"malleated", malleate(tok), "a", now, false},
	}
	for _, c := range cases {
		if got := s.validStreamToken(c.token, c.id, c.at); got != c.want {
			t.Errorf("%s: valid = %v, want %v", c.name, got, c.want)
		}
	}
}

// malleate flips the lowest bit of the last character of a base64url
// token: a bit no byte holds, so a lax decoder reads the same token.
func malleate(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[last^1])
}
