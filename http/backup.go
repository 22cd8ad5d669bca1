package http

// Backup, restore, copy and reset of an environment's data
// (keyhold.BackupService), in the shapes of the Power Platform admin API:
//
//	POST   /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{envId}/backups             {"label":"…"}    201
//	GET    …/scopes/admin/environments/{envId}/backups                                                                      200
//	GET    …/scopes/admin/environments/{envId}/backups/{backupId}                                                           200
//	DELETE …/scopes/admin/environments/{envId}/backups/{backupId}                                                           204
//	POST   …/scopes/admin/environments/{envId}/restore   {"backupId":"…","sourceEnvironmentId":"…"}                          202
//	POST   …/scopes/admin/environments/{envId}/copy      {"sourceEnvironmentId":"…","copyType":"FullCopy"}                   202
//	POST   …/scopes/admin/environments/{envId}/reset     {} or no body                                                       202
//
// A backup is taken at once and answered 201 with where it lives in
// Location. Restore, copy and reset are durable operations: they answer
// 202 Accepted as a link does, with the operation in the body, where to
// poll it in operation-location (and Location) and Retry-After; the
// operation is read at …/scopes/admin/operations/{opId}, which the CMK
// routes serve (cmk.go), so a server with Backups set has CMK set too, as
// server.Run wires it. {envId} of restore, copy and reset is always the
// environment that is overwritten.
//
// Bodies are strict: a field the route doesn't know is refused (400
// InvalidRequestContent) rather than ignored, so that a misspelt
// "backupID" or a real BAP option Keyhold doesn't implement is not
// silently dropped while the environment is overwritten anyway. Every
// refusal happens before anything starts and changes nothing.

import (
	"bytes"
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Paths, limits and examples of the backup routes.
const (
	backupsName = "backups"
	restoreName = "restore"
	copyName    = "copy"
	resetName   = "reset"
	// copyTypeFull is the only copyType served: everything, data included
	// (BAP's MinimalCopy, settings only, has no meaning here).
	copyTypeFull  = "FullCopy"
	maxBackupBody = 16 << 10
	// backupTimeout bounds taking and deleting a backup: each copies or
	// deletes every row, file and chunk of an environment in one
	// transaction, which takes longer than an API call usually may.
	backupTimeout = 10 * time.Minute

	exampleBackupCreate = `{"label":"before the upgrade"}`
	exampleRestore      = `{"backupId":"2c7e…"}`
	exampleCopy         = `{"sourceEnvironmentId":"8f…","copyType":"FullCopy"}`
	exampleReset        = `{}`
)

// backupRoutes declares the backup, restore, copy and reset routes; none
// while s.Backups is nil.
func (s *Server) backupRoutes() []route {
	if s.Backups == nil {
		return nil
	}
	admin := []keyhold.Audience{keyhold.AudiencePowerApps, keyhold.AudienceManagement}
	const env = adminEnvPrefix + "/{envId}"
	post := func(pattern string, timeout time.Duration, h func(nethttp.ResponseWriter, *nethttp.Request) error) route {
		return route{Method: "POST", Pattern: pattern, Auth: admin, Body: bodyJSON, MaxBody: maxBackupBody, Timeout: timeout, Handler: h}
	}
	return []route{
		post(env+"/"+backupsName, backupTimeout, s.createBackup),
		{Method: "GET", Pattern: env + "/" + backupsName, Auth: admin, Timeout: apiTimeout, Handler: s.listBackups},
		{Method: "GET", Pattern: env + "/" + backupsName + "/{backupId}", Auth: admin, Timeout: apiTimeout, Handler: s.getBackup},
		{Method: "DELETE", Pattern: env + "/" + backupsName + "/{backupId}", Auth: admin, Timeout: backupTimeout, Handler: s.deleteBackup},
		post(env+"/"+restoreName, apiTimeout, s.restoreBackup),
		post(env+"/"+copyName, apiTimeout, s.copyEnvironment),
		post(env+"/"+resetName, apiTimeout, s.resetEnvironment),
	}
}

// backupLocation is the URL of a backup.
func (s *Server) backupLocation(r *nethttp.Request, envID, backupID string) string {
	return s.baseURL(r) + adminEnvPrefix + "/" + url.PathEscape(envID) + "/" + backupsName + "/" + url.PathEscape(backupID)
}

// createBackup: POST …/environments/{envId}/backups. The body, and its
// label, may be left out.
func (s *Server) createBackup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Label *string `json:"label"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeKnown(body, &in, exampleBackupCreate, "label"); err != nil {
			return err
		}
	}
	var label string
	if in.Label != nil {
		label = *in.Label
	}
	b, err := s.Backups.CreateBackup(r.Context(), r.PathValue("envId"), label)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.backupLocation(r, b.EnvID, b.ID))
	writeJSON(w, nethttp.StatusCreated, b)
	return nil
}

// listBackups: GET …/environments/{envId}/backups, newest first.
func (s *Server) listBackups(w nethttp.ResponseWriter, r *nethttp.Request) error {
	bs, err := s.Backups.ListBackups(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	out := listJSON[*keyhold.Backup]{Value: bs}
	if out.Value == nil {
		out.Value = []*keyhold.Backup{} // [] rather than null
	}
	writeJSON(w, nethttp.StatusOK, out)
	return nil
}

// getBackup: GET …/environments/{envId}/backups/{backupId}. The service
// has no single-backup read: the environment's list is searched, which
// also checks the caller and the environment as listing does.
func (s *Server) getBackup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, backupID := r.PathValue("envId"), r.PathValue("backupId")
	bs, err := s.Backups.ListBackups(r.Context(), envID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(bs, func(b *keyhold.Backup) bool { return b.ID == backupID })
	if i < 0 {
		return keyhold.Errorf(keyhold.CodeBackupNotFound, "environment %s has no backup %q: GET …/environments/%s/%s lists its backups", keyhold.Clip(envID), keyhold.Clip(backupID), keyhold.Clip(envID), backupsName)
	}
	writeJSON(w, nethttp.StatusOK, bs[i])
	return nil
}

// deleteBackup: DELETE …/environments/{envId}/backups/{backupId}.
func (s *Server) deleteBackup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.Backups.DeleteBackup(r.Context(), r.PathValue("envId"), r.PathValue("backupId")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// restoreBackup: POST …/environments/{envId}/restore, overwriting {envId}
// with the backup backupId. sourceEnvironmentId, the environment the
// backup was taken of, may be given as a check: the service finds the
// backup by its id alone, so a backup that is not one of that
// environment's is refused (400) rather than restored.
func (s *Server) restoreBackup(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		BackupID *string `json:"backupId"`
		SourceID *string `json:"sourceEnvironmentId"`
	}
	if err := decodeKnown(body, &in, exampleRestore, "backupId", "sourceEnvironmentId"); err != nil {
		return err
	}
	backupID := trimmed(in.BackupID)
	if backupID == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "backupId is required: send the id of a backup (GET …/environments/{envId}/%s lists them), as in %s", backupsName, exampleRestore)
	}
	if sourceID := trimmed(in.SourceID); sourceID != "" {
		bs, err := s.Backups.ListBackups(r.Context(), sourceID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(bs, func(b *keyhold.Backup) bool { return b.ID == backupID }) {
			return keyhold.Errorf(keyhold.CodeBadRequest, "backup %q is not a backup of environment %s (sourceEnvironmentId): name the environment the backup was taken of, or leave sourceEnvironmentId out",
				keyhold.Clip(backupID), keyhold.Clip(sourceID))
		}
	}
	op, err := s.Backups.RestoreBackup(r.Context(), r.PathValue("envId"), backupID)
	if err != nil {
		return err
	}
	s.acceptOperation(w, r, op)
	return nil
}

// copyEnvironment: POST …/environments/{envId}/copy, overwriting {envId}
// with the current data of sourceEnvironmentId.
func (s *Server) copyEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		SourceID *string `json:"sourceEnvironmentId"`
		CopyType *string `json:"copyType"`
	}
	if err := decodeKnown(body, &in, exampleCopy, "sourceEnvironmentId", "copyType"); err != nil {
		return err
	}
	sourceID := trimmed(in.SourceID)
	if sourceID == "" {
		return keyhold.Errorf(keyhold.CodeBadRequest, "sourceEnvironmentId is required: send the id of the environment whose data overwrites this one, as in %s", exampleCopy)
	}
	if ct := trimmed(in.CopyType); ct != "" && !strings.EqualFold(ct, copyTypeFull) {
		return keyhold.Errorf(keyhold.CodeBadRequest, "only %s is supported: copyType %q is not; send \"copyType\":%q or leave it out", copyTypeFull, keyhold.Clip(ct), copyTypeFull)
	}
	op, err := s.Backups.CopyEnvironment(r.Context(), r.PathValue("envId"), sourceID)
	if err != nil {
		return err
	}
	s.acceptOperation(w, r, op)
	return nil
}

// resetEnvironment: POST …/environments/{envId}/reset. The body may be
// left out; if sent, it must be an empty object.
func (s *Server) resetEnvironment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var in struct{}
		if err := decodeKnown(body, &in, exampleReset); err != nil {
			return err
		}
	}
	op, err := s.Backups.ResetEnvironment(r.Context(), r.PathValue("envId"))
	if err != nil {
		return err
	}
	s.acceptOperation(w, r, op)
	return nil
}

// decodeKnown decodes body, one JSON object, into v, refusing any field
// that is not in known. Names match in any case, as encoding/json matches
// them.
func decodeKnown(body []byte, v any, example string, known ...string) error {
	var fields map[string]json.RawMessage
	if err := decodeJSON(body, &fields, example); err != nil {
		return err
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names) // the same body always names the same field
	for _, k := range names {
		if !slices.ContainsFunc(known, func(n string) bool { return strings.EqualFold(n, k) }) {
			if len(known) == 0 {
				return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body field %q is not known here: this route takes no fields; send %s or no body", keyhold.Clip(k), example)
			}
			return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "request body field %q is not known here: send only %s, as in %s", keyhold.Clip(k), strings.Join(known, " and "), example)
		}
	}
	return decodeJSON(body, v, example)
}

// trimmed is *p without surrounding space; "" for nil.
func trimmed(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}
