package gha

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// blobOptions size the uploads to Azure Blob storage.
type blobOptions struct {
	// singleShot is the largest blob sent with one Put Blob; larger ones
	// go as Put Block + Put Block List.
	singleShot int64
	// block is the size of one Put Block.
	block int64
}

// blockIDLen is the raw length of a block id in the Azure Go SDK's layout:
// a 16-byte random (UUID-like) prefix, the block number as a big-endian
// uint32 at byte 16, zeros after. falcondev-style servers that ignore the
// block list order blocks by that number, so kiln uses the same layout.
const blockIDLen = 64

// blockID returns the base64 id of block n of an upload with prefix.
func blockID(prefix [16]byte, n uint32) string {
	var raw [blockIDLen]byte
	copy(raw[:], prefix[:])
	binary.BigEndian.PutUint32(raw[16:], n)
	return base64.StdEncoding.EncodeToString(raw[:])
}

// withQuery appends parameters to a signed URL without re-encoding the
// signature's own parameters.
func withQuery(sas, extra string) string {
	if strings.Contains(sas, "?") {
		return sas + "&" + extra
	}
	return sas + "?" + extra
}

// putBlob uploads r to the signed URL sas: one Put Blob when the blob is
// at most singleShot bytes, else blocks of o.block bytes and a Put Block
// List naming them in order. Every request carries x-ms-version; Put Blob
// carries x-ms-blob-type. Each request body is held in memory, so a
// retrying transport can send it again. It returns the bytes sent.
func (c *client) putBlob(ctx context.Context, sas string, r io.Reader, size int64, o blobOptions) (int64, error) {
	limit := o.singleShot
	if size >= 0 && size < limit {
		limit = size
	}
	// One byte more than a single shot may hold tells the two cases apart.
	first := make([]byte, limit+1)
	n, err := io.ReadFull(r, first)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, fmt.Errorf("gha: reading blob bytes: %w", err)
	}
	if int64(n) <= o.singleShot {
		if err := c.azurePut(ctx, sas, first[:n], true); err != nil {
			return 0, err
		}
		return int64(n), nil
	}
	// Larger than one shot: block after block, the bytes read so far
	// first.
	var prefix [16]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return 0, err
	}
	rest := io.MultiReader(bytes.NewReader(first[:n]), r)
	buf := make([]byte, o.block)
	var ids []string
	var total int64
	for {
		m, err := io.ReadFull(rest, buf)
		if m > 0 {
			id := blockID(prefix, uint32(len(ids)))
			u := withQuery(sas, "comp=block&blockid="+url.QueryEscape(id))
			if err := c.azurePut(ctx, u, buf[:m], false); err != nil {
				return total, err
			}
			ids = append(ids, id)
			total += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return total, fmt.Errorf("gha: reading blob bytes: %w", err)
		}
	}
	var list bytes.Buffer
	list.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		list.WriteString("<Latest>" + id + "</Latest>")
	}
	list.WriteString("</BlockList>")
	if err := c.azurePut(ctx, withQuery(sas, "comp=blocklist"), list.Bytes(), false); err != nil {
		return total, err
	}
	return total, nil
}

// azurePut sends one PUT to blob storage: Put Blob (wholeBlob), Put Block
// or Put Block List. Signed URLs carry their own authorisation: the
// runtime token is never sent there.
func (c *client) azurePut(ctx context.Context, u string, body []byte, wholeBlob bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gha: making upload request: %s", c.scrub(err.Error()))
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("x-ms-version", azureVersion)
	if wholeBlob {
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		req.Header.Set("Content-Type", "application/octet-stream")
	} else if strings.HasSuffix(u, "comp=blocklist") {
		req.Header.Set("Content-Type", "application/xml")
	}
	resp, err := c.do(req, storageName)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return c.newError(resp, storageName)
	}
	drain(resp)
	return nil
}
