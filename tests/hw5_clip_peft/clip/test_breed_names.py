"""Class names for the text side: the synset-id mapping to ImageNet-1k and open_clip's curated names."""
import pytest
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from hw5_clip_peft.clip.breed_names import NAME_STYLES, breed_names, curated_name, imagenet_index
from hw5_clip_peft.clip.dog_breeds import IMAGENET_INDEX, STANFORD_DOGS_FOLDERS, wnid


def test_imagenet_index_is_the_rank_of_the_wordnet_id_among_the_1000_synsets():
    timm_data = pytest.importorskip("timm.data")
    synsets = timm_data.ImageNetInfo().label_names()  # the 1,000 ImageNet-1k WordNet ids, class order
    assert len(synsets) == 1000 and synsets == sorted(synsets)  # ImageNet-1k numbers classes by sorted wnid
    assert [synsets.index(wnid(f)) for f in STANFORD_DOGS_FOLDERS] == list(IMAGENET_INDEX)
    assert [synsets[i] for i in IMAGENET_INDEX] == [wnid(f) for f in STANFORD_DOGS_FOLDERS]


@pytest.mark.parametrize("folder, curated, raw", [
    ("n02085620-Chihuahua", "Chihuahua", "Chihuahua"),
    ("n02088238-basset", "Basset Hound", "basset"),
    ("n02112137-chow", "Chow Chow", "chow"),
    ("n02113023-Pembroke", "Pembroke Welsh Corgi", "Pembroke"),
    ("n02113186-Cardigan", "Cardigan Welsh Corgi", "Cardigan"),
    ("n02096585-Boston_bull", "Boston Terrier", "Boston bull"),
    ("n02098413-Lhasa", "Lhasa Apso", "Lhasa"),
    ("n02111129-Leonberg", "Leonberger", "Leonberg"),
    ("n02112706-Brabancon_griffon", "brussels griffon", "Brabancon griffon"),
    ("n02116738-African_hunting_dog", "African wild dog", "African hunting dog"),
])
def test_curated_and_raw_names(folder, curated, raw):
    assert breed_names([folder]) == (curated,) and breed_names([folder], "raw") == (raw,)


def test_every_breed_maps_and_names_are_distinct():
    curated = breed_names(STANFORD_DOGS_FOLDERS)
    assert len(set(curated)) == 120 and curated == tuple(IMAGENET_CLASSNAMES[i] for i in IMAGENET_INDEX)
    assert all(imagenet_index(f) is not None for f in STANFORD_DOGS_FOLDERS)
    assert imagenet_index("n02110341-dalmatian") is None  # ImageNet's dalmatian is not in Stanford Dogs
    assert curated_name("n99999999-my_dog") == "my dog"  # outside Stanford Dogs: the raw name
    assert NAME_STYLES == ("curated", "raw")
    with pytest.raises(ValueError, match="name style"):
        breed_names(STANFORD_DOGS_FOLDERS, "fancy")
