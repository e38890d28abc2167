/* data_conf.h — the [data] section: where a split's images are, how they are decoded and
 * labelled, and how the loader runs (data_conf.c parses it).
 *
 * Directory layout: ROOT/<class>/<image>, one subfolder per class, class names sorted (or listed
 * in the config), labels their index. Splits come from separate folders (train/, val/ or
 * validation/, test/, or the [data] train/val/test keys), or from validation_split + seed on one
 * folder; or, with `features = FILE`, from a feature file written by `shardnet extract`. */
#ifndef SN_DATA_CONF_H
#define SN_DATA_CONF_H

#include <stdint.h>

#include "config.h"
#include "err.h"

enum sn_split { SN_SPLIT_TRAIN = 0, SN_SPLIT_VAL, SN_SPLIT_TEST };
enum sn_label_mode { SN_LABEL_INT = 0, SN_LABEL_CATEGORICAL, SN_LABEL_BINARY };
enum sn_interp { SN_INTERP_BILINEAR = 0, SN_INTERP_NEAREST, SN_INTERP_AREA };
/* Where a split folder's file list is kept between runs (index_cache.h): nowhere; in the user's
 * cache folder ($XDG_CACHE_HOME/shardnet/index, else $HOME/.cache/shardnet/index); in the split
 * folder itself (ROOT/.shardnet-index); in a folder the config names. Zero is off, so a
 * zero-initialised struct sn_data_conf reads and writes no cache. */
enum sn_index_cache {
    SN_INDEX_CACHE_NO = 0,
    SN_INDEX_CACHE_HOME,
    SN_INDEX_CACHE_BESIDE,
    SN_INDEX_CACHE_DIR
};

#define SN_PATH_MAX 1024
#define SN_MAX_CLASSES 1024

/* The [data] section. */
struct sn_data_conf {
    char dir[SN_PATH_MAX];             /* root holding train/ val|validation/ test/ */
    char split_dir[3][SN_PATH_MAX];    /* explicit train/val/test paths ("" = derive from dir),
                                          indexed by enum sn_split */
    char dir_where[160];               /* where dir was set ("mnist.cfg:12", "--set data.dir") */
    char split_where[3][160];          /* same for train/val/test */
    int height, width;                 /* image_size = 28 or 180,180 */
    int channels;                      /* color_mode: grayscale 1, rgb 3 */
    enum sn_interp interp;             /* interpolation */
    int crop_to_aspect_ratio;
    enum sn_label_mode label_mode;
    int label_mode_set;                /* label_mode was given (it must then agree with the loss) */
    int n_class_names;                 /* class_names = a,b,c or class_names_file = FILE
                                          (0 = infer from folders) */
    char class_names[SN_MAX_CLASSES][64];
    double validation_split;           /* 0 = separate folders */
    int has_split_seed;
    uint64_t split_seed;               /* seed (of [data], else [train] seed) */
    int on_bad_image_fail;             /* on_bad_image = skip | fail */
    int threads;                       /* decode workers per rank (0 = auto) */
    int queue_depth;                   /* batches decoded ahead (0 = auto) */
    long long max_pixels;              /* refuse larger images before decoding */
    char features[SN_PATH_MAX];        /* features = FILE: samples are a base's outputs stored
                                          by `shardnet extract` (featfile.h), not images;
                                          height, width, channels are then theirs */
    char features_where[160];
    enum sn_index_cache index_cache;   /* index_cache = yes | home | beside | no | FOLDER */
    char index_dir[SN_PATH_MAX];       /* the FOLDER of SN_INDEX_CACHE_DIR, as written */
    int cache_memory;                  /* cache = memory: training keeps each decoded image
                                          (before augmentation) and decodes it only once;
                                          cache = no (0): every epoch decodes again */
};

/* Parses [data] (missing keys take defaults; image_size is required in a [data] section that
 * names no feature file). With features = FILE the file's train split gives height, width and
 * channels (its shapes are read, not its arrays). Errors name the config line. */
int sn_data_conf_parse(struct sn_data_conf *dc, const struct sn_config *cfg, struct sn_err *err);

#endif
