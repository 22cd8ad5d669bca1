package storetest

import "testing"

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/kh_x?sslmode=disable"},
		{"postgresql://u:p@h/db", "postgresql://u:p@h/kh_x"},
		{"postgres://u@h:1", "postgres://u@h:1/kh_x"},
		{"host=127.0.0.1 port=5432 user=postgres", "host=127.0.0.1 port=5432 user=postgres dbname=kh_x"},
	} {
		if got := withDatabase(tc.dsn, "kh_x"); got != tc.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}
