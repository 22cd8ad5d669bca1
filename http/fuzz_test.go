package http

import (
	"errors"
	"testing"

	"github.com/keyhold/keyhold"
)

// checkDecodeError fails unless err is nil or a *keyhold.Error whose code
// answers a 4xx status.
func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := errors.AsType[*keyhold.Error](err)
	if !ok {
		t.Fatalf("decoding %q: error %T %v is not a *keyhold.Error", body, err, err)
	}
	if s := StatusOf(e.Code); s < 400 || s > 499 {
		t.Fatalf("decoding %q: code %s answers %d, want a 4xx", body, e.Code, s)
	}
	if e.Message == "" {
		t.Fatalf("decoding %q: empty message", body)
	}
}

var fuzzSeeds = []string{
	"",
	"{}",
	"null",
	"[]",
	`"x"`,
	"{} {}",
	"{\"a\":\"\xff\"}",
	exampleEnvironmentCreate,
	exampleEnvironmentPatch,
	exampleRow,
	`{"location":"mars","properties":{"displayName":"X","environmentSku":"Production"}}`,
	`{"location":"europe","properties":{"displayName":42}}`,
	`{"properties":{"governanceConfiguration":{"protectionLevel":"Ultra"}}}`,
	`{"properties":{"displayName":null,"governanceConfiguration":null}}`,
	`{"properties":[]}`,
	`{"location":"europe",`,
}

func FuzzDecodeEnvironmentCreate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := parseEnvironmentCreate(body)
		checkDecodeError(t, body, err)
		if err == nil && e.Validate() != nil {
			t.Fatalf("decoding %q: accepted an invalid environment %+v", body, e)
		}
	})
}

func FuzzDecodeEnvironmentPatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		upd, err := parseEnvironmentPatch(body)
		checkDecodeError(t, body, err)
		if err == nil && upd.DisplayName != nil && len(*upd.DisplayName) == 0 {
			t.Fatalf("decoding %q: accepted an empty display name", body)
		}
	})
}

func FuzzDecodeRow(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := parseRow(body)
		checkDecodeError(t, body, err)
		if err == nil && (len(raw) == 0 || raw[0] != '{') {
			t.Fatalf("decoding %q: accepted %q, which is not a JSON object", body, raw)
		}
	})
}
