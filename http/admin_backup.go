package http

import (
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
)

// The admin center's backups, restore and copy (issue 17): the backups
// section of an environment's page, and the confirmation pages that
// restore a backup and copy an environment. Each calls the BackupService
// that the BAP admin API serves, so its refusals (a backup under a
// customer-managed key restored into an environment that key doesn't
// protect, a Locked environment, a missing role) are the API's, word for
// word. A restore or copy, once started, is shown on its operation's page.

// adminConfirm is the value of the confirmation box that a restore and a
// copy need: the server refuses without it, as the admin center's dialog
// does before it overwrites an environment.
const adminConfirm = "overwrite"

// envBackups is the backups section of an environment's page.
type envBackups struct {
	Backups []*keyhold.Backup
	// Key says which key the environment's backups are under: its own
	// keys', whatever protects them (a link moves them to the customer's
	// key, rotation rewraps them, a revocation locks them).
	Key   string
	Error string // the service's refusal to list them
	On    bool   // the server takes backups at all
}

// backupKey names the key that protects e's data, and so its backups.
func backupKey(e *keyhold.Environment, p *keyhold.EnterprisePolicy) string {
	switch {
	case e.KeyManagedBy == keyhold.KeyManagedByCustomer && p != nil:
		return "Customer-managed key " + p.KeyName + " in " + vaultName(p)
	case e.KeyManagedBy == keyhold.KeyManagedByCustomer:
		return "Customer-managed key of enterprise policy " + e.PolicyID
	case e.KeyManagedBy == keyhold.KeyManagedByCustomerViaMicrosoft:
		return "Customer's key held by Microsoft (BYOK)"
	}
	return "Microsoft-managed key"
}

// adminEnvBackups fills d's backups section, as the caller may see it.
func (s *Server) adminEnvBackups(r *nethttp.Request, d *envPageData) error {
	if s.Backups == nil {
		return nil
	}
	d.Backups.On = true
	d.Backups.Key = backupKey(d.Env, d.Policy)
	bs, err := s.Backups.ListBackups(r.Context(), d.Env.ID)
	if err != nil {
		msg, _, err := adminRefusal(err)
		d.Backups.Error = msg
		return err
	}
	d.Backups.Backups = bs
	return nil
}

// adminBackupCreate: POST /admin/environments/{envId}/backups with
// label=… takes a backup now.
func (s *Server) adminBackupCreate(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
	id := r.PathValue("envId")
	if s.Backups == nil {
		return s.adminEnvRefused(w, r, v, keyhold.Errorf(keyhold.CodeNotSupported, "this server takes no backups"))
	}
	if _, err := s.Backups.CreateBackup(r.Context(), id, r.PostForm.Get("label")); err != nil {
		return s.adminEnvRefused(w, r, v, err)
	}
	nethttp.Redirect(w, r, adminPrefix+"/environments/"+url.PathEscape(id)+"?done=backup-created#backups", nethttp.StatusSeeOther)
	return nil
}

// adminEnvRefused shows a service's refusal on the environment's page
// (or alone, if the page itself is refused), with its status.
func (s *Server) adminEnvRefused(w nethttp.ResponseWriter, r *nethttp.Request, v adminView, err error) error {
	msg, status, ferr := adminRefusal(err)
	if ferr != nil {
		return ferr
	}
	if _, verr := s.adminEnvironmentView(r, &v); verr != nil {
		v.Title, v.Error = "Environment", msg
		return renderAdmin(w, status, "refused", v)
	}
	v.Error = msg
	return renderAdmin(w, status, "environment", v)
}

// overwriteData is a restore's or a copy's confirmation page.
type overwriteData struct {
	Kind    string // "restore" or "copy"
	Env     *keyhold.Environment
	Backup  *keyhold.Backup // a restore's
	Targets []*keyhold.Environment
	Target  string // the chosen target's id
	Key     string // the key the data being written is under
	Path    string
}

// adminOverwriteView fills v with the confirmation page of a restore
// (kind "restore", the backup named by backupID) or a copy (kind "copy")
// from environment {envId}.
func (s *Server) adminOverwriteView(r *nethttp.Request, v *adminView, kind, backupID, target string) error {
	if s.Backups == nil {
		return keyhold.Errorf(keyhold.CodeNotSupported, "this server takes no backups and runs no restore or copy")
	}
	d := &overwriteData{Kind: kind, Target: target}
	v.Nav, v.Data = "environments", d
	var pd adminView
	if _, err := s.adminEnvironmentView(r, &pd); err != nil {
		return err
	}
	ep := pd.Data.(*envPageData)
	d.Env, d.Key = ep.Env, backupKey(ep.Env, ep.Policy)
	d.Path = adminPrefix + "/environments/" + url.PathEscape(d.Env.ID) + "/" + kind
	if kind == "restore" {
		v.Title = "Restore a backup of " + d.Env.DisplayName
		bs, err := s.Backups.ListBackups(r.Context(), d.Env.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(bs, func(b *keyhold.Backup) bool { return b.ID == backupID })
		if i < 0 {
			return keyhold.Errorf(keyhold.CodeBackupNotFound, "environment %s has no backup %q: pick one in its Backups list", keyhold.Clip(d.Env.ID), keyhold.Clip(backupID))
		}
		d.Backup = bs[i]
		if d.Target == "" {
			d.Target = d.Env.ID
		}
	} else {
		v.Title = "Copy " + d.Env.DisplayName + " to another environment"
	}
	envs, err := s.Environments.ListEnvironments(r.Context())
	if err != nil {
		return err
	}
	for _, e := range envs {
		if kind == "copy" && e.ID == d.Env.ID {
			continue // a copy onto itself is no copy
		}
		d.Targets = append(d.Targets, e)
	}
	slices.SortFunc(d.Targets, func(a, b *keyhold.Environment) int {
		if (a.ID == d.Env.ID) != (b.ID == d.Env.ID) {
			if a.ID == d.Env.ID {
				return -1
			}
			return 1
		}
		return strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName))
	})
	return nil
}

// adminOverwritePage: GET /admin/environments/{envId}/restore?backup=…
// and GET …/{envId}/copy: what is overwritten, by what, under which key.
func (s *Server) adminOverwritePage(kind string) adminHandler {
	return func(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
		q := r.URL.Query()
		if err := s.adminOverwriteView(r, &v, kind, q.Get("backup"), q.Get("target")); err != nil {
			msg, status, err := adminRefusal(err)
			if err != nil {
				return err
			}
			v.Title, v.Error, v.Data = "Environment", msg, adminPrefix+"/environments/"+url.PathEscape(r.PathValue("envId"))
			return renderAdmin(w, status, "access-refused", v)
		}
		return renderAdmin(w, nethttp.StatusOK, "overwrite", v)
	}
}

// adminOverwrite: POST /admin/environments/{envId}/restore (backup=…,
// target=…, confirm=overwrite) and POST …/{envId}/copy (target=…,
// confirm=overwrite) start the restore or the copy, after the
// confirmation; a refusal shows the service's message on the
// confirmation page and starts nothing.
func (s *Server) adminOverwrite(kind string) adminHandler {
	return func(w nethttp.ResponseWriter, r *nethttp.Request, v adminView) error {
		f := r.PostForm
		target := strings.TrimSpace(f.Get("target"))
		if err := s.adminOverwriteView(r, &v, kind, f.Get("backup"), target); err != nil {
			msg, status, err := adminRefusal(err)
			if err != nil {
				return err
			}
			v.Title, v.Error, v.Data = "Environment", msg, adminPrefix+"/environments/"+url.PathEscape(r.PathValue("envId"))
			return renderAdmin(w, status, "access-refused", v)
		}
		d := v.Data.(*overwriteData)
		var (
			op  *keyhold.Operation
			err error
		)
		switch {
		case target == "":
			err = keyhold.Errorf(keyhold.CodeBadRequest, "choose the environment to overwrite")
		case f.Get("confirm") != adminConfirm:
			err = keyhold.Errorf(keyhold.CodeBadRequest, "tick the box to confirm that environment %s is overwritten: every row and file in it is replaced, and nothing was started", keyhold.Clip(target))
		case kind == "restore":
			op, err = s.Backups.RestoreBackup(r.Context(), target, d.Backup.ID)
		default:
			op, err = s.Backups.CopyEnvironment(r.Context(), target, d.Env.ID)
		}
		if err != nil {
			msg, status, ferr := adminRefusal(err)
			if ferr != nil {
				return ferr
			}
			v.Error = msg
			return renderAdmin(w, status, "overwrite", v)
		}
		s.toOperation(w, r, v.sess, op)
		return nil
	}
}
