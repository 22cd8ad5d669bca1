package http

import (
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"

	"github.com/keyhold/keyhold"
)

// rowPath returns the validated names of a row route.
func rowPath(r *nethttp.Request) (envID, table, rowID string, err error) {
	envID, table, rowID = r.PathValue("envId"), r.PathValue("table"), r.PathValue("rowId")
	if err := keyhold.ValidateTableName(table); err != nil {
		return "", "", "", err
	}
	if err := keyhold.ValidateItemName("row id", rowID); err != nil {
		return "", "", "", err
	}
	return envID, table, rowID, nil
}

// putRow: PUT /environments/{envId}/tables/{table}/rows/{rowId}.
func (s *Server) putRow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, table, rowID, err := rowPath(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	data, err := parseRow(body)
	if err != nil {
		return err
	}
	row, err := s.Data.PutRow(r.Context(), envID, table, rowID, data)
	if err != nil {
		return err
	}
	writeRow(w, nethttp.StatusOK, row)
	return nil
}

// getRow: GET /environments/{envId}/tables/{table}/rows/{rowId}.
func (s *Server) getRow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, table, rowID, err := rowPath(r)
	if err != nil {
		return err
	}
	row, err := s.Data.GetRow(r.Context(), envID, table, rowID)
	if err != nil {
		return err
	}
	writeRow(w, nethttp.StatusOK, row)
	return nil
}

// listRows: GET /environments/{envId}/tables/{table}/rows?$top=&$filter=&$skiptoken=.
func (s *Server) listRows(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, table := r.PathValue("envId"), r.PathValue("table")
	if err := keyhold.ValidateTableName(table); err != nil {
		return err
	}
	qv := r.URL.Query()
	q := keyhold.RowQuery{Filter: qv.Get("$filter"), SkipToken: qv.Get("$skiptoken")}
	if t := qv.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return keyhold.Errorf(keyhold.CodeInvalidRequestContent, "$top %q is not valid: give a whole number from 1 to %d", keyhold.Clip(t), keyhold.MaxRowPage)
		}
		q.Top = n
	}
	page, err := s.Data.ListRows(r.Context(), envID, table, q)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, page)
	return nil
}

// deleteRow: DELETE /environments/{envId}/tables/{table}/rows/{rowId}.
func (s *Server) deleteRow(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, table, rowID, err := rowPath(r)
	if err != nil {
		return err
	}
	if err := s.Data.DeleteRow(r.Context(), envID, table, rowID); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// putFile: PUT /environments/{envId}/files/{name}. The body streams into
// the service, which never holds the whole file.
func (s *Server) putFile(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	if err := keyhold.ValidateItemName("file name", name); err != nil {
		return err
	}
	info, err := s.Data.PutFile(r.Context(), r.PathValue("envId"), name, r.Body)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, info)
	return nil
}

// getFile: GET /environments/{envId}/files/{name}. The plaintext streams
// out as it is decrypted, so a decryption error can surface after the
// headers are sent; the handler then returns an error and the wrapper
// aborts the connection (see Server.fail).
func (s *Server) getFile(w nethttp.ResponseWriter, r *nethttp.Request) error {
	envID, name := r.PathValue("envId"), r.PathValue("name")
	if err := keyhold.ValidateItemName("file name", name); err != nil {
		return err
	}
	info, rc, err := s.Data.OpenFile(r.Context(), envID, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("ETag", etag(info.Version))
	if !info.UpdatedAt.IsZero() {
		h.Set("Last-Modified", info.UpdatedAt.UTC().Format(nethttp.TimeFormat))
	}
	w.WriteHeader(nethttp.StatusOK)
	if r.Method == nethttp.MethodHead {
		return nil
	}
	src := &readErr{r: rc}
	// The client must read at the minimum streaming rate (deadline.go).
	n, err := io.CopyBuffer(s.newRateWriter(w), src, make([]byte, 64<<10))
	switch {
	case src.err != nil && r.Context().Err() != nil:
		return nil // the client went away, so the reads were cancelled
	case src.err != nil:
		return fmt.Errorf("reading file %s of environment %s after %d bytes: %w", name, envID, n, src.err)
	case errors.Is(err, nethttp.ErrContentLength):
		return fmt.Errorf("file %s of environment %s is longer than its recorded size %d", name, envID, info.Size)
	case err != nil:
		return nil // the client went away; nothing to tell it
	case n != info.Size:
		return fmt.Errorf("file %s of environment %s ended after %d of its %d bytes", name, envID, n, info.Size)
	}
	return nil
}

// etag is a file version's entity tag.
func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// readErr remembers the error of its reader, to tell a failed read (the
// stored data) from a failed write (the client) after io.Copy.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
