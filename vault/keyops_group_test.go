package vault

import (
	"sync"
	"testing"

	"github.com/keyhold/keyhold/crypt"
)

// TestUnwrapAuditGrouped: concurrent unwraps on SQLite append their audit
// entries through the store's group committer: every call's entry is
// there once it has answered, and the entries share commits.
func TestUnwrapAuditGrouped(t *testing.T) {
	f := sqliteOnly(t)
	g, ok := f.store.(interface{ GroupCommits() int64 })
	if !ok {
		t.Fatal("the SQLite store counts no group commits")
	}
	v := f.rbacVault("kv-group", nil)
	f.createKey(v.Name, "cmk")
	kid, ct := must2(t)(f.svc.WrapKey(as(encUser), v.Name, "cmk", "", crypt.AlgRSAOAEP256, []byte("ek")))
	auditBefore, commitsBefore := len(f.audit()), g.GroupCommits()
	const clients, calls = 16, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*calls)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if _, _, err := f.svc.UnwrapKey(as(encUser), v.Name, "cmk", versionOf(kid), crypt.AlgRSAOAEP256, ct); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(f.audit()) - auditBefore; n != clients*calls {
		t.Fatalf("%d audit entries for %d unwraps", n, clients*calls)
	}
	n := g.GroupCommits() - commitsBefore
	if n == 0 || n > clients*calls {
		t.Fatalf("%d group commits for %d unwraps: the audit entries did not go through the group committer", n, clients*calls)
	}
	t.Logf("%d unwraps audited in %d commits", clients*calls, n)
}
