package commands

import (
	"context"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
)

// Catalog runs the commands on products: listing, catalogue changes,
// discontinuation and stock on hand. The stock an order holds is moved by
// Orders (see saga.go).
type Catalog struct {
	*repository
	grace time.Duration
}

// CreateProduct is the listing command: the domain's, whose ProductID the
// handler sets and whose VendorID it honours for admins only.
type CreateProduct = product.Create

// CreateProduct lists a product owned by the calling vendor (or, for an
// admin, by the vendor named). The SKU is claimed first, then the product
// is written. Errors: domain.ErrForbidden (not a vendor or admin), CodeInvalid,
// CodeConflict "sku_taken".
func (h *Catalog) CreateProduct(ctx context.Context, actor Actor, c CreateProduct) (product.State, Result, error) {
	if !actor.Has(user.RoleVendor) && !actor.Has(user.RoleAdmin) {
		return product.State{}, Result{}, domain.ErrForbidden
	}
	vendor := actor.ID
	if actor.Has(user.RoleAdmin) && c.VendorID != "" {
		// An admin lists for a vendor, who must exist and hold the role,
		// or nobody could ever manage the product.
		v, err := load(ctx, h.repository, userKind, user.Stream(c.VendorID))
		if err != nil {
			return product.State{}, Result{}, wrap("create product", err)
		}
		if !v.state.Exists() || !v.state.HasRole(user.RoleVendor) {
			var f domain.Fields
			f.Add("vendor_id", "must name a user with the vendor role")
			return product.State{}, Result{}, f.Err()
		}
		vendor = c.VendorID
	}
	id := h.newID()
	cmd := c
	cmd.ProductID, cmd.VendorID = id, vendor
	// Validate before claiming the SKU, so bad input writes nothing.
	if _, err := product.DecideCreate(product.New(), cmd); err != nil {
		return product.State{}, Result{}, err
	}
	sku := product.NormaliseSKU(c.SKU)
	if _, err := claim(ctx, h.repository, h.grace, unique.Stream(product.SKUStreamPrefix, sku), sku, id, "sku_taken", h.productOwner()); err != nil {
		return product.State{}, Result{}, err
	}
	fresh(h.repository, productKind, product.Stream(id))
	st, res, err := execute(ctx, h.repository, productKind, product.Stream(id), NoVersion, func(s product.State) ([]domain.Event, error) {
		return product.DecideCreate(s, cmd)
	})
	return st, res, wrap("create product", err)
}

func (h *Catalog) productOwner() owner {
	return owner{
		state: func(ctx context.Context, id string) (bool, bool, error) {
			p, err := load(ctx, h.repository, productKind, product.Stream(id))
			return p.state.Exists(), p.state.Abandoned(), err
		},
		fence: func(ctx context.Context, id string) (bool, bool, error) {
			s, _, err := execute(ctx, h.repository, productKind, product.Stream(id), NoVersion, func(s product.State) ([]domain.Event, error) {
				return product.DecideAbandon(s, id), nil
			})
			return s.Exists(), s.Abandoned(), err
		},
	}
}

// Product returns the current state of product id. Errors: CodeNotFound.
func (h *Catalog) Product(ctx context.Context, id string) (product.State, Result, error) {
	p, err := load(ctx, h.repository, productKind, product.Stream(id))
	if err != nil {
		return product.State{}, Result{}, wrap("load product", err)
	}
	if !p.state.Exists() {
		return product.State{}, Result{}, domain.NotFound("product", id)
	}
	return p.state, Result{Version: p.state.Version, Position: p.pos}, nil
}

// ownProduct wraps a product decision with the per-object check: the
// product exists, and the actor is its vendor or an admin.
func ownProduct(actor Actor, id string, decide decision[product.State]) decision[product.State] {
	return func(s product.State) ([]domain.Event, error) {
		if !s.Exists() {
			return nil, domain.NotFound("product", id)
		}
		if !actor.Has(user.RoleAdmin) && !(actor.Has(user.RoleVendor) && s.VendorID == actor.ID) {
			return nil, domain.ErrForbidden
		}
		return decide(s)
	}
}

// UpdateProduct changes catalogue fields. ifMatch is the version the
// client last saw, or NoVersion. Errors: domain.ErrForbidden (another vendor's
// product), domain.ErrPreconditionFailed, CodeNotFound, CodeConflict, CodeInvalid.
func (h *Catalog) UpdateProduct(ctx context.Context, actor Actor, id string, ifMatch int64, c product.Update) (product.State, Result, error) {
	st, res, err := execute(ctx, h.repository, productKind, product.Stream(id), ifMatch, ownProduct(actor, id, func(s product.State) ([]domain.Event, error) {
		return product.DecideUpdate(s, c)
	}))
	return st, res, wrap("update product", err)
}

// DiscontinueProduct takes a product off sale. Errors: domain.ErrForbidden,
// domain.ErrPreconditionFailed, CodeNotFound.
func (h *Catalog) DiscontinueProduct(ctx context.Context, actor Actor, id string, ifMatch int64) (product.State, Result, error) {
	st, res, err := execute(ctx, h.repository, productKind, product.Stream(id), ifMatch, ownProduct(actor, id, product.DecideDiscontinue))
	return st, res, wrap("discontinue product", err)
}

// AdjustInventory changes stock on hand. Errors: domain.ErrForbidden,
// domain.ErrPreconditionFailed, CodeNotFound, CodeInvalid, CodeConflict
// "below_reserved".
func (h *Catalog) AdjustInventory(ctx context.Context, actor Actor, id string, ifMatch int64, c product.AdjustInventory) (product.State, Result, error) {
	st, res, err := execute(ctx, h.repository, productKind, product.Stream(id), ifMatch, ownProduct(actor, id, func(s product.State) ([]domain.Event, error) {
		return product.DecideAdjustInventory(s, c)
	}))
	return st, res, wrap("adjust inventory", err)
}
