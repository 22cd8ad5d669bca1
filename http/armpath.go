package http

import (
	nethttp "net/http"
	"net/url"
	"strings"
)

// ARM paths are case-insensitive: the Azure SDKs send "resourceGroups",
// scripts and templates often "resourcegroups" or "Microsoft.Keyvault".
// The router rewrites the fixed segments of every path under
// /subscriptions/ to one spelling before the ServeMux, whose patterns are
// case-sensitive, matches it. Names (of subscriptions, groups, resources,
// role assignments) are left as they are: only segments in a type position
// of the ARM id grammar are rewritten, so a resource group named
// "Providers" keeps its name.

// armLiterals are the fixed segments the routes spell, by lower case.
var armLiterals = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{
		"subscriptions", "resourceGroups", "providers",
		"Microsoft.KeyVault", "Microsoft.PowerPlatform", "Microsoft.Authorization", "Microsoft.Resources",
		"vaults", "enterprisePolicies", "roleAssignments", "roleDefinitions", "deployments",
		"deletedVaults", "locations", "accessPolicies", "managedHSMs", "deletedManagedHSMs",
	} {
		m[strings.ToLower(s)] = s
	}
	return m
}()

// canonicalARMPath returns path (escaped or not) with the fixed segments
// of an ARM id spelled as armLiterals has them. Paths that don't start with
// /subscriptions/ (in any case) are returned unchanged.
//
// The grammar: /subscriptions/{sub} then pairs of {type}/{name}, where the
// type "providers" is followed by a namespace instead of a name and then
// by {type}/{name} pairs again; a lone trailing segment is a type (a list,
// or an action such as "register").
func canonicalARMPath(path string) string {
	segs := strings.Split(path, "/")
	if len(segs) < 3 || segs[0] != "" || !strings.EqualFold(segs[1], "subscriptions") {
		return path
	}
	fix := func(i int) {
		if c, ok := armLiterals[strings.ToLower(segs[i])]; ok {
			segs[i] = c
		}
	}
	fix(1)
	// segs[2] is the subscription id.
	for i := 3; i < len(segs); {
		isProviders := strings.EqualFold(segs[i], "providers")
		fix(i) // a type
		if isProviders && i+1 < len(segs) {
			fix(i + 1) // a namespace
		}
		i += 2 // past the name, or the namespace
	}
	return strings.Join(segs, "/")
}

// canonicalizeARM returns r with its path rewritten by canonicalARMPath,
// keeping its escaping: r itself if nothing changes, else a shallow copy
// (as net/http.StripPrefix makes).
func canonicalizeARM(r *nethttp.Request) *nethttp.Request {
	esc := r.URL.EscapedPath()
	c := canonicalARMPath(esc)
	if c == esc {
		return r
	}
	p, err := url.PathUnescape(c)
	if err != nil {
		return r // the ServeMux will refuse it as it is
	}
	r2 := new(nethttp.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path, r2.URL.RawPath = p, c
	return r2
}
