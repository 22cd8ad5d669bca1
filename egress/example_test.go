package egress_test

import (
	"fmt"
	"net/url"

	"github.com/keyhold/keyhold/egress"
)

// A policy refuses the metadata endpoint and loopback by default; the
// operator's allowlist opens what it names.
func ExampleNew() {
	p, err := egress.New(egress.Options{Allow: []string{"10.20.0.0/16", "hooks.internal"}, Flag: "--egress-allow"})
	if err != nil {
		panic(err)
	}
	for _, raw := range []string{"http://169.254.169.254/latest/meta-data/", "https://10.20.1.2/hook", "https://hooks.internal/x", "https://[::ffff:127.0.0.1]/"} {
		u, _ := url.Parse(raw)
		fmt.Printf("%s: %v\n", raw, p.CheckURL(u))
	}
	// Output:
	// http://169.254.169.254/latest/meta-data/: 169.254.169.254 is a link-local (cloud metadata) address, which outbound requests may not reach; an operator can allow it with --egress-allow
	// https://10.20.1.2/hook: <nil>
	// https://hooks.internal/x: <nil>
	// https://[::ffff:127.0.0.1]/: ::ffff:127.0.0.1 (127.0.0.1) is a loopback address, which outbound requests may not reach; an operator can allow it with --egress-allow
}
