package api

import (
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
	}
	for _, c := range cases {
		if got := s.validStreamToken(c.token, c.id, c.at); got != c.want {
			t.Errorf("%s: valid = %v, want %v", c.name, got, c.want)
		}
	}
}
