// image_gif.cpp: GIF -> RGB (first frame) with giflib, as Pillow 13 shows
// frame 0 after convert("RGB"): the canvas is the logical screen (grown to
// hold the frame if the frame sticks out), pixels outside the frame take the
// transparent index if a graphic control extension before the frame set one,
// else index 0; every index is looked up in the local, else global, colour
// table (no table, or a table that is the identity grey ramp: grey = index;
// an index past the table: black). The transparent index is not applied to
// the pixels but reported as its colour (DecodedFrame::colour_key): Pillow
// keeps it through convert("RGB") and transformers' processor turns every
// pixel of that colour white. Interlaced frames are reordered. Later frames,
// comments and application extensions are skipped.
#include "image/image_codecs.h"

#include <gif_lib.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace vlm {
namespace {

struct GifMemoryReader {
    const uint8_t *data;
    size_t         size;
    size_t         pos;
};

int gif_read_from_memory(GifFileType *gif, GifByteType *dst, int n) {
    auto *r = static_cast<GifMemoryReader *>(gif->UserData);
    if (n <= 0) return 0;
    const size_t take = std::min(static_cast<size_t>(n), r->size - r->pos);
    std::memcpy(dst, r->data + r->pos, take);
    r->pos += take;
    return static_cast<int>(take);
}

struct GifCloser {
    void operator()(GifFileType *g) const {
        int e = 0;
        DGifCloseFile(g, &e);
    }
};

std::string gif_reason(int code) {
    const char *m = GifErrorString(code);
    return m ? m : "unknown giflib error";
}

}  // namespace

bool decode_gif(const uint8_t *bytes, size_t size, const ImageLimits &lim, DecodedFrame &out,
                std::string &err) {
    GifMemoryReader reader{bytes, size, 0};
    int open_error = 0;
    std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&reader, gif_read_from_memory, &open_error));
    if (!gif) {
        err = "corrupt or truncated GIF: " + gif_reason(open_error);
        return false;
    }
    GifFileType *g = gif.get();
    if (!check_image_dimensions(g->SWidth, g->SHeight, lim, err)) return false;

    int transparent = -1;
    for (;;) {
        GifRecordType rec;
        if (DGifGetRecordType(g, &rec) == GIF_ERROR) {
            err = "corrupt or truncated GIF: " + gif_reason(g->Error);
            return false;
        }
        if (rec == TERMINATE_RECORD_TYPE) {
            err = "GIF has no image";
            return false;
        }
        if (rec == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = nullptr;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
                err = "corrupt or truncated GIF: " + gif_reason(g->Error);
                return false;
            }
            // ext[0] is the block length; Pillow reads flags and index from
            // the first block of a graphic control extension, and a later
            // one without the transparency flag does not clear it.
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1))
                transparent = ext[4];
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
                    err = "corrupt or truncated GIF: " + gif_reason(g->Error);
                    return false;
                }
            }
            continue;
        }
        if (rec != IMAGE_DESC_RECORD_TYPE) continue;

        if (DGifGetImageDesc(g) == GIF_ERROR) {
            err = "corrupt or truncated GIF: " + gif_reason(g->Error);
            return false;
        }
        const GifImageDesc &d = g->Image;
        const int fw = d.Width, fh = d.Height, fx = d.Left, fy = d.Top;
        const int64_t cw = std::max<int64_t>(g->SWidth, int64_t(fx) + fw);
        const int64_t ch = std::max<int64_t>(g->SHeight, int64_t(fy) + fh);
        if (!check_image_dimensions(cw, ch, lim, err)) return false;

        const int w = static_cast<int>(cw), h = static_cast<int>(ch);
        std::vector<uint8_t> index(static_cast<size_t>(w) * h,
                                   static_cast<uint8_t>(transparent >= 0 ? transparent : 0));
        std::vector<GifPixelType> line(static_cast<size_t>(std::max(fw, 1)));
        // Row order of an interlaced frame: 4 passes over every 8th/8th/4th/2nd row.
        static const int pass_start[4] = {0, 4, 2, 1}, pass_step[4] = {8, 8, 4, 2};
        const int passes = d.Interlace ? 4 : 1;
        for (int p = 0; p < passes && fw > 0; ++p) {
            const int start = d.Interlace ? pass_start[p] : 0, step = d.Interlace ? pass_step[p] : 1;
            for (int y = start; y < fh; y += step) {
                if (DGifGetLine(g, line.data(), fw) == GIF_ERROR) {
                    err = "corrupt or truncated GIF: " + gif_reason(g->Error);
                    return false;
                }
                std::memcpy(&index[static_cast<size_t>(fy + y) * w + fx], line.data(), fw);
            }
        }

        const ColorMapObject *cmap = d.ColorMap ? d.ColorMap : g->SColorMap;
        bool grey = !(cmap && cmap->Colors);   // Pillow's mode "L"
        if (!grey) {
            grey = true;
            for (int i = 0; i < cmap->ColorCount && grey; ++i) {
                const GifColorType &c = cmap->Colors[i];
                grey = c.Red == i && c.Green == i && c.Blue == i;
            }
        }
        uint8_t lut[256][3];
        for (int i = 0; i < 256; ++i) {
            const uint8_t v = grey ? uint8_t(i) : 0;
            lut[i][0] = lut[i][1] = lut[i][2] = v;
        }
        if (!grey) {
            for (int i = 0; i < cmap->ColorCount && i < 256; ++i) {
                lut[i][0] = cmap->Colors[i].Red;
                lut[i][1] = cmap->Colors[i].Green;
                lut[i][2] = cmap->Colors[i].Blue;
            }
        }
        out.width = w;
        out.height = h;
        out.rgb.resize(static_cast<size_t>(w) * h * 3);
        for (size_t i = 0; i < index.size(); ++i) std::memcpy(&out.rgb[3 * i], lut[index[i]], 3);
        if (transparent >= 0) {
            out.has_colour_key = true;
            std::memcpy(out.colour_key, lut[transparent], 3);
        }
        return true;
    }
}

}  // namespace vlm
