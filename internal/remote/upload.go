package remote

import (
	"errors"
	"net/http"

	ggcrtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kiln-build/kiln/internal/transport"
)

// restartUpload is ggcr's retry predicate: whether a whole blob upload
// should start again from a new session. That is the case when the session
// broke (a dropped connection the transport could not replay, or the
// registry forgetting the upload), not for errors the transport already
// retried.
func restartUpload(err error) bool {
	if err == nil {
		return false
	}
	var done *transport.RetryError
	if errors.As(err, &done) {
		return false
	}
	var terr *ggcrtransport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return true
		}
		for _, d := range terr.Errors {
			if d.Code == ggcrtransport.BlobUploadInvalidErrorCode || d.Code == ggcrtransport.BlobUploadUnknownErrorCode {
				return true
			}
		}
		return false
	}
	return transport.Transient(err)
}
