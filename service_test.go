package keyhold

import (
	"context"
	"testing"
)

// TestCaller: Caller returns the identity in the context, and refuses a
// context without one or with one that names no principal.
func TestCaller(t *testing.T) {
	good := &Identity{TenantID: "t1", PrincipalID: "p1"}
	cases := []struct {
		name string
		ctx  context.Context
		want *Identity
	}{
		{"identity", NewContext(context.Background(), good), good},
		{"no identity", context.Background(), nil},
		{"nil identity", NewContext(context.Background(), nil), nil},
		{"empty principal", NewContext(context.Background(), &Identity{TenantID: "t1"}), nil},
	}
	for _, c := range cases {
		id, err := Caller(c.ctx)
		if id != c.want {
			t.Errorf("%s: Caller = %v, want %v", c.name, id, c.want)
		}
		if c.want == nil && ErrorCode(err) != CodeUnauthorized {
			t.Errorf("%s: err = %v, want %s", c.name, err, CodeUnauthorized)
		}
		if c.want != nil && err != nil {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
}
