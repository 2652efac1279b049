"""What crawlers and other catalogs read: /robots.txt, /sitemap.xml (a sitemap index whose pages hold
at most 50,000 URLs each, the sitemaps.org protocol's limit, so millions of records fit) and
/downloads (the dumps `modelport export` wrote, with their sizes and checksums)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse

from modelport.api.deps import services
from modelport.api.web import templates
from modelport.export import MANIFEST, exports_dir, read_manifest
from modelport.services import Services

router = APIRouter(tags=["publishing"])
URLS_PER_SITEMAP = 50_000  # https://www.sitemaps.org/protocol.html: at most 50,000 URLs (and 50 MB) a file
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
XML = "application/xml"


def _base(svc: Services) -> str:
    return svc.settings.base_iri.rstrip("/")


@router.get("/robots.txt", response_class=PlainTextResponse, include_in_schema=False)
def robots(svc: Annotated[Services, Depends(services)]) -> str:
    # Model pages and dumps are for crawlers; searches, facet combinations and query endpoints are not.
    return ("User-agent: *\nAllow: /models/\nAllow: /downloads\nDisallow: /?\nDisallow: /search\n"
            "Disallow: /sparql\nDisallow: /api/\nDisallow: /harvests\n"
            f"\nSitemap: {_base(svc)}/sitemap.xml\n")


@router.get("/sitemap.xml", include_in_schema=False)
def sitemap_index(svc: Annotated[Services, Depends(services)]) -> Response:
    base = _base(svc)
    pages = max(1, -(-svc.catalog.count() // URLS_PER_SITEMAP))
    locs = [f"{base}/sitemaps/pages.xml", *(f"{base}/sitemaps/models-{n}.xml" for n in range(pages))]
    body = "".join(f"<sitemap><loc>{escape(loc)}</loc></sitemap>\n" for loc in locs)
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SITEMAP_NS}">\n{body}'
                    "</sitemapindex>\n", media_type=XML)


@router.get("/sitemaps/pages.xml", include_in_schema=False)
def sitemap_pages(svc: Annotated[Services, Depends(services)]) -> Response:
    base = _base(svc)
    body = "".join(f"<url><loc>{base}{p}</loc></url>\n" for p in ("/", "/sparql", "/downloads"))
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n{body}</urlset>\n',
                    media_type=XML)


@router.get("/sitemaps/models-{n}.xml", include_in_schema=False)
def sitemap_models(n: int, svc: Annotated[Services, Depends(services)]) -> Response:
    pages = max(1, -(-svc.catalog.count() // URLS_PER_SITEMAP))
    if not 0 <= n < pages:
        raise HTTPException(404, f"no sitemap page {n}; there are {pages} (see /sitemap.xml)")
    ids = svc.catalog.live_ids_page(n * URLS_PER_SITEMAP, URLS_PER_SITEMAP)
    base = _base(svc)

    def body() -> Iterator[str]:
        yield f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n'
        for i in range(0, len(ids), 1000):
            yield "".join(f"<url><loc>{escape(base + '/models/' + quote(rid, safe='/:@'))}</loc></url>\n"
                          for rid in ids[i:i + 1000])
        yield "</urlset>\n"

    return StreamingResponse(body(), media_type=XML)


@router.get("/downloads", include_in_schema=False, response_model=None)
def downloads(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """The dumps, as a page (or the manifest as JSON for `Accept: application/json`)."""
    manifest = read_manifest(svc.settings)
    if "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""):
        return JSONResponse(manifest or {"files": {}})
    return templates.TemplateResponse(request, "downloads.html", {"manifest": manifest, "q": ""})


@router.get("/downloads/{name}", include_in_schema=False)
def download(name: str, svc: Annotated[Services, Depends(services)]) -> FileResponse:
    manifest = read_manifest(svc.settings) or {}
    files: dict[str, dict[str, object]] = manifest.get("files", {})  # type: ignore[assignment]
    if name == MANIFEST:
        return FileResponse(exports_dir(svc.settings) / MANIFEST, media_type="application/json")
    if name not in files:  # only what the manifest lists: never a path the client made up
        raise HTTPException(404, f"no download {name!r}; see /downloads")
    path = exports_dir(svc.settings) / name
    if not path.is_file():
        raise HTTPException(404, f"{name} is listed but missing; run `modelport export` again")
    return FileResponse(path, media_type="application/gzip", filename=name,
                        headers={"X-Content-SHA256": str(files[name].get("sha256", ""))})
