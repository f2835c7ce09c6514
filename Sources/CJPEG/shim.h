// libjpeg-turbo for the simulator's live camera frames. libjpeg reports errors with longjmp, which Swift
// cannot do: the whole encode runs here, in C, behind one function that returns an error code instead.
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <jpeglib.h>

struct gh_jpeg_error {
    struct jpeg_error_mgr base;
    jmp_buf jump;
};

static void gh_jpeg_error_exit(j_common_ptr info) {
    struct gh_jpeg_error *error = (struct gh_jpeg_error *)info->err;
    longjmp(error->jump, 1);
}

static void gh_jpeg_silent(j_common_ptr info) { (void)info; }

/// Encodes `width` x `height` RGB pixels (3 bytes each, rows top to bottom) as a baseline JPEG. On success
/// returns 0 and sets `*out` (free it with free()) and `*out_size`; returns -1 on any libjpeg error.
static inline int gh_jpeg_encode_rgb(const unsigned char *rgb, int width, int height, int quality,
                                     unsigned char **out, unsigned long *out_size) {
    struct jpeg_compress_struct info;
    struct gh_jpeg_error error;
    *out = NULL;
    *out_size = 0;
    info.err = jpeg_std_error(&error.base);
    error.base.error_exit = gh_jpeg_error_exit;
    error.base.output_message = gh_jpeg_silent;
    if (setjmp(error.jump)) {
        jpeg_destroy_compress(&info);
        free(*out);
        *out = NULL;
        return -1;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, out, out_size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)info.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    return 0;
}
