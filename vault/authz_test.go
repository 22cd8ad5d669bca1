package vault

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/crypt"
)

// opCase is one key operation, runnable on a key of its own.
type opCase struct {
	op *operation
	// prep makes, as officer, what the operation needs: a live key, a
	// deleted key, or a wrapped value (arg).
	prep func(f *fixture, vault, key string) (arg []byte)
	run  func(ctx context.Context, f *fixture, vault, key string, arg []byte) error
	// done reports, as officer, whether the operation took effect; nil for
	// operations that change nothing.
	done func(f *fixture, vault, key string) bool
}

func live(f *fixture, vault, key string) []byte { f.createKey(vault, key); return nil }

func deleted(f *fixture, vault, key string) []byte {
	f.createKey(vault, key)
	if _, err := f.svc.DeleteKey(as(officer), vault, key); err != nil {
		f.t.Fatal(err)
	}
	return nil
}

func wrapped(f *fixture, vault, key string) []byte {
	f.createKey(vault, key)
	_, ct, err := f.svc.WrapKey(as(officer), vault, key, "", crypt.AlgRSAOAEP256, []byte("ek"))
	if err != nil {
		f.t.Fatal(err)
	}
	return ct
}

func nothing(*fixture, string, string) []byte { return nil }

func exists(f *fixture, vault, key string) bool {
	_, err := f.svc.GetKey(as(officer), vault, key, "")
	return err == nil
}

func isDeleted(f *fixture, vault, key string) bool {
	_, err := f.svc.GetDeletedKey(as(officer), vault, key)
	return err == nil
}

var opCases = []opCase{
	{opGetKey, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.GetKey(ctx, v, k, "")
		return err
	}, nil},
	{opListKeys, live, func(ctx context.Context, f *fixture, v, _ string, _ []byte) error {
		_, err := f.svc.ListKeys(ctx, v)
		return err
	}, nil},
	{opListKeyVersions, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.ListKeyVersions(ctx, v, k)
		return err
	}, nil},
	{opCreateKey, nothing, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.CreateKey(ctx, v, k, keyhold.CreateKeyParams{})
		return err
	}, exists},
	{opImportKey, nothing, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.ImportKey(ctx, v, k, jwkOf(poolKey()), false, keyhold.KeyAttributes{}, nil)
		return err
	}, exists},
	{opUpdateKey, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.UpdateKey(ctx, v, k, "", keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil)
		return err
	}, func(f *fixture, v, k string) bool {
		b, err := f.svc.GetKey(as(officer), v, k, "")
		return err == nil && !b.Version.Enabled
	}},
	{opWrapKey, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, _, err := f.svc.WrapKey(ctx, v, k, "", crypt.AlgRSAOAEP256, []byte("ek"))
		return err
	}, nil},
	{opUnwrapKey, wrapped, func(ctx context.Context, f *fixture, v, k string, ct []byte) error {
		_, pt, err := f.svc.UnwrapKey(ctx, v, k, "", crypt.AlgRSAOAEP256, ct)
		if err == nil && string(pt) != "ek" {
			return fmt.Errorf("unwrapped %q", pt)
		}
		return err
	}, nil},
	{opRotateKey, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.RotateKey(ctx, v, k)
		return err
	}, func(f *fixture, v, k string) bool { return len(f.versions(v, k)) == 2 }},
	{opGetRotationPolicy, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.GetRotationPolicy(ctx, v, k)
		return err
	}, nil},
	{opSetRotationPolicy, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.SetRotationPolicy(ctx, v, k, &keyhold.RotationPolicy{LifetimeActions: []keyhold.LifetimeAction{{Action: ActionRotate, TimeAfterCreate: "P30D"}}})
		return err
	}, func(f *fixture, v, k string) bool {
		p, err := f.svc.GetRotationPolicy(as(officer), v, k)
		return err == nil && p.LifetimeActions[0].Action == ActionRotate
	}},
	{opDeleteKey, live, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.DeleteKey(ctx, v, k)
		return err
	}, isDeleted},
	{opGetDeletedKey, deleted, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.GetDeletedKey(ctx, v, k)
		return err
	}, nil},
	{opListDeletedKeys, deleted, func(ctx context.Context, f *fixture, v, _ string, _ []byte) error {
		_, err := f.svc.ListDeletedKeys(ctx, v)
		return err
	}, nil},
	{opRecoverKey, deleted, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		_, err := f.svc.RecoverDeletedKey(ctx, v, k)
		return err
	}, exists},
	{opPurgeKey, deleted, func(ctx context.Context, f *fixture, v, k string, _ []byte) error {
		return f.svc.PurgeDeletedKey(ctx, v, k)
	}, func(f *fixture, v, k string) bool { return !isDeleted(f, v, k) && !exists(f, v, k) }},
}

func TestOpCasesCoverEveryOperation(t *testing.T) {
	for _, op := range operations {
		if !slices.ContainsFunc(opCases, func(c opCase) bool { return c.op == op }) {
			t.Errorf("operation %s (%s) has no case", op.Name, op.Audit)
		}
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	f := sqliteOnly(t)
	rbac := f.rbacVault("kv-matrix-rbac", nil)
	ap := f.apVault("kv-matrix-ap", nil)
	all := operations
	reads := []*operation{opGetKey, opListKeys, opListKeyVersions, opGetDeletedKey, opListDeletedKeys}
	for _, tc := range []struct {
		vault   *keyhold.Vault
		who     string
		id      *keyhold.Identity
		allowed []*operation
	}{
		// Owner of the subscription: every control-plane action, no data action.
		{rbac, "owner", owner, nil},
		{rbac, "crypto officer", officer, all},
		// keys/read covers get, list and the deleted keys' reads.
		{rbac, "encryption user", encUser, append(slices.Clone(reads), opWrapKey, opUnwrapKey)},
		// Key Vault Reader: */read, the rotation policy included.
		{rbac, "reader", reader, append(slices.Clone(reads), opGetRotationPolicy)},
		{rbac, "stranger", stranger, nil},
		// Access policies mean nothing on an RBAC vault.
		{rbac, "access-policy principal", apUser, nil},
		{ap, "owner", owner, nil},
		{ap, "policy with all", officer, all},
		{ap, "encryption user", encUser, nil},
		{ap, "stranger", stranger, nil},
		{ap, "access-policy principal", apUser, []*operation{opWrapKey}},
	} {
		kind := "rbac"
		if !tc.vault.EnableRbacAuthorization {
			kind = "access policy"
		}
		for i, c := range opCases {
			name := fmt.Sprintf("%s/%s/%s", kind, tc.who, c.op.Audit)
			t.Run(name, func(t *testing.T) {
				key := fmt.Sprintf("k-%s-%d", strings.ReplaceAll(tc.who, " ", "-"), i)
				arg := c.prep(f, tc.vault.Name, key)
				err := c.run(as(tc.id), f, tc.vault.Name, key, arg)
				if slices.Contains(tc.allowed, c.op) {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if c.done != nil && !c.done(f, tc.vault.Name, key) {
						t.Fatal("allowed but without effect")
					}
					return
				}
				if tc.vault.EnableRbacAuthorization {
					wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac, tc.id.PrincipalID, c.op.DataAction, "operation "+c.op.Name)
				} else {
					wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerAccessDenied, tc.id.PrincipalID, "keys "+c.op.Permission+" permission")
				}
				if c.done != nil && c.done(f, tc.vault.Name, key) {
					t.Fatal("refused, yet the operation took effect")
				}
			})
		}
	}

	// A caller without access can't tell a missing key from a present one.
	_, err := f.svc.GetKey(as(stranger), rbac.Name, "no-such-key", "")
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac)
	// An assignment on one key covers that key only.
	f.createKey(rbac.Name, "scoped")
	f.createKey(rbac.Name, "other")
	f.grant(stranger, keyhold.RoleKeyVaultCryptoServiceEncryptUser, rbac.ID()+"/keys/scoped")
	if _, err := f.svc.GetKey(as(stranger), rbac.Name, "scoped", ""); err != nil {
		t.Fatalf("key-scoped assignment: %v", err)
	}
	_, err = f.svc.GetKey(as(stranger), rbac.Name, "other", "")
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac)
	// No identity at all.
	_, err = f.svc.GetKey(context.Background(), rbac.Name, "scoped", "")
	wantCode(t, err, keyhold.CodeUnauthorized, "")
}

func TestNetworkRules(t *testing.T) {
	f := sqliteOnly(t)
	client := netip.MustParseAddr("203.0.113.9")
	try := func(vault string, id *keyhold.Identity, o keyhold.Origin) error {
		_, _, err := f.svc.WrapKey(from(id, o), vault, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek"))
		return err
	}
	// officer (a service principal) and encUser (a managed identity) may
	// both wrap on these vaults; only the network decides.
	// Each vault gets its key while it is open, then its rules.
	closed := func(name string, mod func(v *keyhold.Vault)) *keyhold.Vault {
		t.Helper()
		v := f.rbacVault(name, nil)
		f.createKey(v.Name, "cmk")
		mod(v)
		if _, err := f.svc.PutVault(as(owner), v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	private := closed("kv-private", func(v *keyhold.Vault) {
		v.PublicNetworkAccess = keyhold.PublicAccessDisable
		v.NetworkACLs = keyhold.NetworkACLs{Bypass: keyhold.BypassAzureServices, DefaultAction: keyhold.NetworkDeny, IPRules: []string{"203.0.113.0/24"}}
	})
	if err := try(private.Name, encUser, keyhold.Origin{IP: client}); err != nil {
		t.Fatalf("managed identity through bypass: %v", err)
	}
	if err := try(private.Name, officer, keyhold.Origin{Internal: true}); err != nil {
		t.Fatalf("in-process platform call through bypass: %v", err)
	}
	// Public access disabled overrides the IP rules.
	wantCode(t, try(private.Name, officer, keyhold.Origin{IP: client}), keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall,
		"Client address: 203.0.113.9", officer.PrincipalID, "public network access is disabled")
	_, err := f.svc.GetKey(from(officer, keyhold.Origin{IP: client}), private.Name, "no-such-key", "")
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall)

	noBypass := closed("kv-no-bypass", func(v *keyhold.Vault) {
		v.PublicNetworkAccess = keyhold.PublicAccessDisable
		v.NetworkACLs.Bypass = keyhold.BypassNone
	})
	wantCode(t, try(noBypass.Name, encUser, keyhold.Origin{IP: client}), keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall, "networkAcls.bypass to AzureServices")
	wantCode(t, try(noBypass.Name, officer, keyhold.Origin{Internal: true}), keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall, "Client address: internal")

	fw := closed("kv-firewall", func(v *keyhold.Vault) {
		v.NetworkACLs = keyhold.NetworkACLs{Bypass: keyhold.BypassNone, DefaultAction: keyhold.NetworkDeny, IPRules: []string{"203.0.113.0/24", "198.51.100.7"}}
	})
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"203.0.113.1", true},
		{"203.0.113.255", true},
		{"::ffff:203.0.113.9", true},
		{"198.51.100.7", true},
		{"198.51.100.8", false},
		{"203.0.114.1", false},
		{"2001:db8::1", false},
	} {
		err := try(fw.Name, officer, keyhold.Origin{IP: netip.MustParseAddr(tc.ip)})
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.ip, err)
		}
		if !tc.ok {
			wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall, "Client address: "+tc.ip, "networkAcls.ipRules")
		}
	}
	wantCode(t, try(fw.Name, officer, keyhold.Origin{}), keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall, "Client address: unknown")
	// Network rules come before authorization: a stranger from outside
	// learns only that the network is closed.
	wantCode(t, try(fw.Name, stranger, keyhold.Origin{IP: netip.MustParseAddr("192.0.2.1")}), keyhold.CodeForbidden, keyhold.InnerForbiddenByFirewall)
	// The rules bind the data plane, not ARM.
	must[*keyhold.Vault](t)(f.svc.GetVault(from(owner, keyhold.Origin{IP: netip.MustParseAddr("192.0.2.1")}), testSub, testRG, fw.Name))
}

func TestAuditOfUnwrap(t *testing.T) {
	f := sqliteOnly(t)
	v := f.rbacVault("kv-audit", nil)
	f.createKey(v.Name, "cmk")
	kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
	before := len(f.audit())

	if _, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid), crypt.AlgRSAOAEP256, ct); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.svc.UnwrapKey(as(stranger), v.Name, "cmk", versionOf(kid), crypt.AlgRSAOAEP256, ct)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerForbiddenByRbac)
	must[*keyhold.KeyBundle](t)(f.svc.UpdateKey(as(officer), v.Name, "cmk", "", keyhold.KeyAttributes{Enabled: ptr(false)}, nil, nil))
	_, _, err = f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid), crypt.AlgRSAOAEP256, ct)
	wantCode(t, err, keyhold.CodeForbidden, keyhold.InnerKeyDisabled)

	es := f.audit()
	if len(es) != before+4 {
		t.Fatalf("%d new audit entries; want 4", len(es)-before)
	}
	disabled, update, refused, allowed := es[0], es[1], es[2], es[3]
	for _, c := range []struct {
		e                     *keyhold.AuditEntry
		actor, action, result string
		target, detail        string
	}{
		{allowed, encUser.PrincipalID, "key.unwrap", "Succeeded", kid, "alg=RSA-OAEP-256"},
		{refused, stranger.PrincipalID, "key.unwrap", keyhold.CodeForbidden, "https://kv-audit.vault.localhost:8443/keys/cmk", "ForbiddenByRbac: "},
		{update, officer.PrincipalID, "key.update", "Succeeded", kid, "enabled=false"},
		{disabled, encUser.PrincipalID, "key.unwrap", keyhold.CodeForbidden, kid, "KeyDisabled: Operation unwrapKey is not allowed on a disabled key"},
	} {
		e := c.e
		if e.ActorID != c.actor || e.Action != c.action || e.Result != c.result || e.Target != c.target || e.TenantID != testTenant ||
			!strings.HasPrefix(e.Detail, c.detail) || !e.At.Equal(start) {
			t.Errorf("audit entry %+v; want actor %s, action %s, result %s, target %s, detail %q…", e, c.actor, c.action, c.result, c.target, c.detail)
		}
	}
	// The refused unwrap changed nothing but the log: the key is as the
	// update left it.
	if b := must[*keyhold.KeyBundle](t)(f.svc.GetKey(as(officer), v.Name, "cmk", "")); b.Version.Enabled {
		t.Fatal("key state")
	}
}
